package archive

import "strings"

// RoleFromAttr maps an IMAP SPECIAL-USE attribute (RFC 6154) to a role.
func RoleFromAttr(attr string) string {
	switch strings.ToLower(attr) {
	case `\sent`:
		return RoleSent
	case `\drafts`:
		return RoleDrafts
	case `\trash`:
		return RoleTrash
	case `\junk`:
		return RoleJunk
	case `\archive`:
		return RoleArchive
	case `\all`:
		return RoleAll
	case `\flagged`:
		return RoleFlagged
	case `\important`:
		return RoleImportant
	}
	return ""
}

// roleNames is the name heuristic used when a source announces no roles.
// Names are compared case-insensitively against the mailbox's last level,
// for top-level mailboxes and direct children of INBOX (Courier/Cyrus
// "INBOX.Sent"). Languages: English, German, French, Spanish, Italian,
// Portuguese, Dutch, Swedish, Danish, Norwegian, Polish, Czech, Russian,
// Greek, Turkish, Japanese, Chinese, plus names that common clients
// (Outlook, Thunderbird, Apple Mail, Gmail over IMAP) create.
var roleNames = map[string][]string{
	RoleSent: {"sent", "sent items", "sent messages", "sent mail", "[gmail]/sent mail",
		"gesendet", "gesendete objekte", "gesendete elemente", "envoyés", "éléments envoyés", "messages envoyés",
		"enviados", "elementos enviados", "inviati", "posta inviata", "elementi inviati", "itens enviados",
		"verzonden", "verzonden items", "skickat", "skickade objekt", "sendt", "sendte elementer", "sendt post",
		"wysłane", "elementy wysłane", "odeslané", "отправленные", "απεσταλμένα", "gönderilmiş", "送信済み", "已发送"},
	RoleDrafts: {"drafts", "draft", "entwürfe", "brouillons", "borradores", "bozze", "rascunhos", "concepten",
		"utkast", "kladder", "kopie robocze", "koncepty", "черновики", "πρόχειρα", "taslaklar", "下書き", "草稿"},
	RoleTrash: {"trash", "deleted", "deleted items", "deleted messages", "bin", "papierkorb", "gelöschte objekte",
		"gelöschte elemente", "corbeille", "éléments supprimés", "papelera", "elementos eliminados", "cestino",
		"posta eliminata", "lixeira", "lixo", "itens excluídos", "prullenbak", "verwijderde items", "papperskorgen",
		"borttagna objekt", "papirkurv", "slettet post", "kosz", "elementy usunięte", "koš", "корзина", "удаленные",
		"κάδος απορριμμάτων", "çöp kutusu", "ゴミ箱", "已删除"},
	RoleJunk: {"junk", "spam", "junk e-mail", "junk email", "junk mail", "bulk mail", "spam-verdacht", "junk-e-mail",
		"courrier indésirable", "indésirables", "correo no deseado", "posta indesiderata", "lixo eletrônico",
		"ongewenste e-mail", "skräppost", "uønsket e-post", "wiadomości-śmieci", "nevyžádaná pošta", "спам",
		"ανεπιθύμητα", "istenmeyen", "迷惑メール", "垃圾邮件"},
	RoleArchive: {"archive", "archives", "archiv", "archivio", "archivo", "archivos", "arquivo", "archief",
		"arkiv", "archiwum", "архив", "αρχειοθέτηση", "arşiv", "アーカイブ", "归档"},
}

type roleGuess struct {
	role string
	rank int // position in roleNames: lower wins when several names match
}

var roleByName = func() map[string]roleGuess {
	m := map[string]roleGuess{}
	for role, names := range roleNames {
		for i, n := range names {
			m[n] = roleGuess{role, i}
		}
	}
	return m
}()

// RoleFromName guesses a role from a mailbox path with the name heuristic
// (see roleNames). It returns "" when the name is not a known one or the
// mailbox is nested deeper than the top level or directly under INBOX.
func RoleFromName(path, sep string) string {
	r, _ := roleFromName(path, sep)
	return r
}

// roleFromName also returns the rank of the matched name; when several
// mailboxes guess the same role the lowest rank (the more canonical name,
// "Sent" before "Gesendet") gets it.
func roleFromName(path, sep string) (string, int) {
	if strings.EqualFold(path, "INBOX") {
		return RoleInbox, 0
	}
	name := path
	if sep != "" {
		parts := strings.Split(path, sep)
		switch {
		case len(parts) == 1:
		case len(parts) == 2 && strings.EqualFold(parts[0], "INBOX"):
			name = parts[1]
		default:
			if g, ok := roleByName[strings.ToLower(path)]; ok { // "[Gmail]/Sent Mail"
				return g.role, g.rank
			}
			return "", 0
		}
	}
	g := roleByName[strings.ToLower(strings.TrimSpace(name))]
	return g.role, g.rank
}

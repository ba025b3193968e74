package corpus

// Vocabulary for generated text, subjects, names and folders. Several
// scripts on purpose: mail in the wild is not ASCII.
var (
	wordsEN = []string{"meeting", "report", "invoice", "project", "update", "schedule", "review", "budget",
		"deadline", "contract", "draft", "summary", "travel", "offer", "question", "proposal", "team",
		"customer", "release", "notes", "agenda", "feedback", "quarter", "delivery", "payment", "order"}
	wordsDE = []string{"Grüße", "Besprechung", "Übersicht", "Rechnung", "Änderung", "Straße", "München",
		"Köln", "Bestätigung", "Angebot", "Prüfung", "Entwürfe", "Größe", "schön", "über", "Frühstück"}
	wordsFR    = []string{"réunion", "été", "déjà", "à", "garçon", "français", "reçu", "élève", "Noël", "cœur", "très"}
	wordsRU    = []string{"привет", "отчёт", "встреча", "проект", "счёт", "вопрос", "спасибо", "документы", "Москва"}
	wordsJA    = []string{"こんにちは", "会議", "報告書", "日本語", "東京", "ありがとう", "資料", "予定"}
	wordsEL    = []string{"Καλημέρα", "συνάντηση", "έκθεση", "ευχαριστώ", "Αθήνα"}
	wordsPL    = []string{"Zażółć", "gęślą", "jaźń", "dziękuję", "spotkanie", "Łódź"}
	wordsAR    = []string{"مرحبا", "اجتماع", "تقرير", "شكرا"}
	wordsHE    = []string{"שלום", "פגישה", "דוח", "תודה"}
	wordsEmoji = []string{"📬", "🚀", "✅", "🎉", "☕", "📎"}

	languages = [][]string{wordsEN, wordsEN, wordsEN, wordsDE, wordsDE, wordsFR, wordsRU, wordsJA, wordsEL, wordsPL, wordsAR, wordsHE}

	people = []struct{ Name, Addr string }{
		{"Alice Example", "alice@example.test"},
		{"Jürgen Müller", "juergen.mueller@example.de"},
		{"François Léger", "f.leger@example.fr"},
		{"Дмитрий Иванов", "d.ivanov@example.ru"},
		{"山田 太郎", "yamada@example.jp"},
		{"Ελένη Παπαδοπούλου", "eleni@example.gr"},
		{"Zofia Wójcik", "zofia@example.pl"},
		{"Bob O'Brien", "bob@example.com"},
		{"Carol \"CJ\" Jones", "carol@example.org"},
		{"Support Team", "support@example.net"},
		{"golang-nuts", "golang-nuts@googlegroups.example"},
		{"", "noreply@example.net"},
	}

	keywordPool = []string{"$label1", "$label2", "$label3", "Projekt-X", "todo", "Rechnung", "client_acme",
		"$MDNSent", "$Junk", "$NotJunk", "follow-up", "Q3-2024"}

	attachmentKinds = []struct{ Name, Type, Magic string }{
		{"report.pdf", "application/pdf", "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"},
		{"photo.png", "image/png", "\x89PNG\r\n\x1a\n"},
		{"archive.zip", "application/zip", "PK\x03\x04"},
		{"Übersicht 2024.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "PK\x03\x04"},
		{"data.bin", "application/octet-stream", ""},
		{"скан документа.jpg", "image/jpeg", "\xff\xd8\xff\xe0"},
		{"notes.txt", "text/plain", ""},
	}
)

// userFolders are the non-special folders a corpus can have, in UTF-8 with
// "/" as separator. Some parents exist only as a prefix ("Work", "Lists",
// "Entwürfe", "Reisen/2023"): a migration must cope with them.
var userFolders = []string{
	"Entwürfe/Projekte",
	"Проекты",
	"日本語のフォルダ",
	"Ünïcödé & Co",
	"Work/Reports 2024",
	"Lists/golang-nuts",
	"Kunden",
	"Kunden/Müller GmbH",
	"Reisen/2023/Italien",
	"Ελληνικά",
	"Receipts",
	"Archive/2019",
	"Zażółć gęślą",
	"Newsletters 📬",
	"Family & Friends",
	"Old [imported]",
}

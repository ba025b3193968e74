package corpus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// pipelineDepth is how many APPENDs one connection keeps in flight.
const pipelineDepth = 16

// LoadIMAP fills the account user at addr (plain IMAP, "host:port") with
// the corpus: it creates the folders (a folder that exists already is
// fine; special-use folders get their USE attribute when the server has
// CREATE-SPECIAL-USE), sets the subscriptions, and APPENDs every message with
// its flags, keywords and internal date over conns parallel connections
// (default 4), pipelining up to 16 APPENDs per connection.
func (c *Corpus) LoadIMAP(ctx context.Context, addr, user, pass string, conns int) error {
	if conns <= 0 {
		conns = 4
	}
	cl, err := dialLogin(addr, user, pass)
	if err != nil {
		return err
	}
	if err := c.createFolders(cl); err != nil {
		cl.Close()
		return err
	}
	cl.Logout().Wait()
	cl.Close()

	work := make(chan *Message)
	errc := make(chan error, conns)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := appendAll(ctx, addr, user, pass, work); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	go func() {
		defer close(work)
		for _, m := range c.Messages {
			select {
			case work <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return ctx.Err()
}

func dialLogin(addr, user, pass string) (*imapclient.Client, error) {
	cl, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to IMAP server %s: %w", addr, err)
	}
	if err := cl.Login(user, pass).Wait(); err != nil {
		cl.Close()
		return nil, fmt.Errorf("log in to %s as %s: %w", addr, user, err)
	}
	return cl, nil
}

func (c *Corpus) createFolders(cl *imapclient.Client) error {
	existing := map[string]bool{}
	list, err := cl.List("", "*", nil).Collect()
	if err != nil {
		return fmt.Errorf("list folders: %w", err)
	}
	for _, l := range list {
		existing[l.Mailbox] = true
	}
	subscribed := map[string]bool{}
	if lsub, err := cl.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect(); err == nil {
		for _, l := range lsub {
			subscribed[l.Mailbox] = true
		}
	}
	useCreate := cl.Caps().Has(imap.CapCreateSpecialUse)
	for _, f := range c.Folders {
		if f.Name != "INBOX" && !existing[f.Name] {
			var opts *imap.CreateOptions
			if f.SpecialUse != "" && useCreate {
				opts = &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttr(f.SpecialUse)}}
			}
			if err := cl.Create(f.Name, opts).Wait(); err != nil && !alreadyExists(err) {
				return fmt.Errorf("create folder %q: %w", f.Name, err)
			}
		}
		switch {
		case f.Subscribed && !subscribed[f.Name]:
			if err := cl.Subscribe(f.Name).Wait(); err != nil {
				return fmt.Errorf("subscribe folder %q: %w", f.Name, err)
			}
		case !f.Subscribed && subscribed[f.Name]:
			if err := cl.Unsubscribe(f.Name).Wait(); err != nil {
				return fmt.Errorf("unsubscribe folder %q: %w", f.Name, err)
			}
		}
	}
	return nil
}

func alreadyExists(err error) bool {
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists {
		return true
	}
	return strings.Contains(strings.ToLower(err.Error()), "already exists")
}

// appendAll APPENDs messages from work on one connection, keeping up to
// pipelineDepth commands in flight (the servers have LITERAL+).
func appendAll(ctx context.Context, addr, user, pass string, work <-chan *Message) error {
	cl, err := dialLogin(addr, user, pass)
	if err != nil {
		return err
	}
	defer cl.Close()
	type pending struct {
		m   *Message
		cmd *imapclient.AppendCommand
	}
	var inflight []pending
	wait := func(p pending) error {
		if _, err := p.cmd.Wait(); err != nil {
			return fmt.Errorf("append message %d (%d bytes) to %q: %w", p.m.Index, p.m.Size, p.m.Folder, err)
		}
		return nil
	}
	for m := range work {
		if ctx.Err() != nil {
			break
		}
		flags := make([]imap.Flag, len(m.Flags))
		for i, f := range m.Flags {
			flags[i] = imap.Flag(f)
		}
		cmd := cl.Append(m.Folder, m.Size, &imap.AppendOptions{Flags: flags, Time: m.InternalDate})
		if _, err := io.Copy(cmd, m.Open()); err != nil {
			return fmt.Errorf("append message %d: %w", m.Index, err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("append message %d: %w", m.Index, err)
		}
		inflight = append(inflight, pending{m, cmd})
		if len(inflight) >= pipelineDepth {
			if err := wait(inflight[0]); err != nil {
				return err
			}
			inflight = inflight[1:]
		}
	}
	for _, p := range inflight {
		if err := wait(p); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return cl.Logout().Wait()
}

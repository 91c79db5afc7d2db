package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/client"
)

// The examples docs/SDK.md shows, run against a real node (main_test.go
// starts it; pushdURL is its URL). What stands for the application's
// backend is at the end of the file.

// Connects with a token and prints the client's states and the pushes to
// the user.
func Example() {
	got := make(chan struct{})
	c := client.New(client.Config{
		URL: pushdURL, // e.g. wss://push.example.com/ws
		GetToken: func(ctx context.Context) (string, error) {
			return fetchToken(ctx, "alice") // your backend signs a pushd token for the user
		},
		OnState: func(e client.StateEvent) { fmt.Println("state:", e.State) },
		OnPush: func(p *client.Push) error {
			fmt.Printf("%s push %s: %s\n", p.Target, p.Event, p.Data)
			close(got)
			return nil
		},
	})
	defer c.Close()
	if err := c.Connect(context.Background()); err != nil {
		log.Fatal(err)
	}

	backendPublishes("push.user.alice", "greet", `{"text":"hi"}`)
	<-got
	// Output:
	// state: connecting
	// state: connected
	// user push greet: {"text":"hi"}
}

// Follows a doc: every edit pushed to it, and a refetch whenever pushes may
// have been missed.
func ExampleClient_Join() {
	ctx := context.Background()
	c := client.New(client.Config{URL: pushdURL, GetToken: tokenOf("bob")})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	edits := make(chan json.RawMessage, 1)
	sub := c.Join("plan", client.JoinOptions{
		OnSubscribed: func(e client.SubscribedEvent) {
			if e.Gap {
				fmt.Println("pushes may have been missed: refetch", e.Doc)
			}
			fmt.Printf("following %s (first join: %v)\n", e.Doc, e.First)
		},
		OnPush: func(p *client.Push) error {
			if p.Event == "edit" {
				edits <- p.Data
			}
			return nil
		},
	})
	if err := sub.Ready(ctx); err != nil {
		log.Fatal(err) // refused for good: forbidden, invalid_doc, ...
	}

	backendPublishes("push.doc.plan", "edit", `{"line":1}`)
	fmt.Printf("edit: %s\n", <-edits)
	// Output:
	// following plan (first join: true)
	// edit: {"line":1}
}

// Resumes where the last run stopped: the pushes published while the
// program was down arrive when it is back, as far back as the server's
// history reaches.
func ExampleConfig_since() {
	ctx := context.Background()
	got := make(chan string, 10)
	run := func(since *uint64) *client.Client {
		c := client.New(client.Config{
			URL:      pushdURL,
			GetToken: tokenOf("carol"),
			Since:    since, // nil on the very first run
			OnHello: func(h client.HelloEvent) {
				fmt.Printf("hello: resumed %v, recovered %v\n", h.Resumed, h.Recovered)
			},
			OnPush: func(p *client.Push) error {
				got <- string(p.Data)
				return nil
			},
		})
		if err := c.Connect(ctx); err != nil {
			log.Fatal(err)
		}
		return c
	}

	c := run(nil)
	backendPublishes("push.user.carol", "message", `"one"`)
	fmt.Println("got", <-got)
	c.Close()
	cursor, _ := c.Cursor() // save it (a file, a database row): the last push handled

	backendPublishes("push.user.carol", "message", `"two"`) // while the program is down

	c = run(&cursor)
	defer c.Close()
	fmt.Println("got", <-got)
	// Output:
	// hello: resumed false, recovered false
	// got "one"
	// hello: resumed true, recovered true
	// got "two"
}

// Acknowledges a push only once it is stored: until then the cursor stays
// below it, and a resume replays it (at least once).
func ExampleConfig_manualAck() {
	stored := make(chan *client.Push, 1)
	c := client.New(client.Config{
		URL:       pushdURL,
		GetToken:  tokenOf("dave"),
		ManualAck: true,
		OnPush: func(p *client.Push) error {
			if p.NeedsAck {
				stored <- p // stored elsewhere, then acknowledged
			}
			return nil
		},
	})
	defer c.Close()
	if err := c.Connect(context.Background()); err != nil {
		log.Fatal(err)
	}

	receipts := backendPublishesWithReceipt("push.user.dave", "order-7", `{"order":7}`)
	p := <-stored
	fmt.Printf("storing %s\n", p.Data)
	p.Ack() // sends {"type":"ack","seq":...}: the node publishes the receipt
	fmt.Println("the backend got the receipt of", <-receipts)
	// Output:
	// storing {"order":7}
	// the backend got the receipt of order-7
}

// Publishes an edit to a doc's backends, joining the doc first when needed;
// errors from the server are *client.ServerError with their code.
func ExampleClient_Publish() {
	ctx := context.Background()
	c := client.New(client.Config{URL: pushdURL, GetToken: tokenOf("erin")})
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	upstream := backendReceives("push.up.doc.notes")

	err := c.Publish(ctx, "notes", "edit", map[string]int{"line": 2})
	if se := (*client.ServerError)(nil); errors.As(err, &se) && se.Code == "not_joined" {
		fmt.Println("not joined yet")
		if err := c.Join("notes", client.JoinOptions{}).Ready(ctx); err != nil {
			log.Fatal(err)
		}
		err = c.Publish(ctx, "notes", "edit", map[string]int{"line": 2})
	}
	if err != nil {
		log.Fatal(err) // disconnected (it may or may not have gone out), rate_limited, ...
	}
	fmt.Println("the backend got", <-upstream)
	// Output:
	// not joined yet
	// the backend got edit {"line":2}
}

// Tells the user when the client gives up: kicked by an admin, the origin
// refused, repeated auth failures.
func ExampleConfig_onDisconnect() {
	gaveUp := make(chan struct{})
	c := client.New(client.Config{
		URL:      pushdURL,
		GetToken: tokenOf("frank"),
		OnDisconnect: func(d client.DisconnectEvent) {
			if !d.WillReconnect {
				fmt.Printf("disconnected from push updates (%d %s)\n", d.Code, d.Reason)
				close(gaveUp)
			}
		},
	})
	defer c.Close()
	if err := c.Connect(context.Background()); err != nil {
		log.Fatal(err)
	}

	adminKicks("frank", "account suspended") // pushctl kick --user frank
	<-gaveUp
	fmt.Println("state:", c.State())
	// Output:
	// disconnected from push updates (4010 account suspended)
	// state: disconnected
}

// What stands for the application's backend in the examples.

// fetchToken asks the backend for a pushd token for user.
func fetchToken(_ context.Context, user string) (string, error) { return signToken(user, time.Hour) }

// tokenOf is a Config.GetToken for user.
func tokenOf(user string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) { return fetchToken(ctx, user) }
}

// backendPublishes publishes a push as a backend does (docs/NATS.md).
func backendPublishes(subject, event, data string) {
	backendPublish(&nats.Msg{Subject: subject, Header: nats.Header{"Push-Event": {event}}, Data: []byte(data)})
}

// backendPublishesWithReceipt publishes a push that asks for a receipt and
// returns the Push-Id of each receipt that comes.
func backendPublishesWithReceipt(subject, id, data string) <-chan string {
	inbox := nats.NewInbox()
	ids := make(chan string, 1)
	sub, err := exampleNATS.Subscribe(inbox, func(m *nats.Msg) {
		var r struct{ ID string }
		_ = json.Unmarshal(m.Data, &r)
		ids <- r.ID
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = sub.AutoUnsubscribe(1)
	backendPublish(&nats.Msg{Subject: subject, Header: nats.Header{"Push-Id": {id}, "Push-Receipt": {inbox}}, Data: []byte(data)})
	return ids
}

// backendReceives returns the event and data of each message on subject.
func backendReceives(subject string) <-chan string {
	got := make(chan string, 10)
	sub, err := exampleNATS.Subscribe(subject, func(m *nats.Msg) { got <- m.Header.Get("Push-Event") + " " + string(m.Data) })
	if err != nil {
		log.Fatal(err)
	}
	_ = sub.AutoUnsubscribe(1)
	if err := exampleNATS.Flush(); err != nil {
		log.Fatal(err)
	}
	return got
}

// backendPublish publishes m and waits until history stored it.
func backendPublish(m *nats.Msg) {
	js, err := jetstream.New(exampleNATS)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, m); err != nil {
		log.Fatal(err)
	}
}

// adminKicks closes user's sessions, as pushctl kick does.
func adminKicks(user, reason string) { exampleNode.Kick("", user, reason) }

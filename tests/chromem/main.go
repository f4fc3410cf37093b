// Command chromem is the real chromem-go v0.7.0 (the version contextd pins) as a small command, for
// guardian's tests: every claim guardian makes about chromem's loader, its files and its answers is
// checked against the library itself. It is built on first use by tests/chromem_build.py.
//
//	chromem load STORE 0|1                          NewPersistentDB's verdict and what it holds
//	chromem dump STORE 0|1                          every document of every collection
//	chromem gen SPEC.json OUT 0|1                   a store written through AddDocument
//	chromem writer STORE 0|1 COLLECTION N GAP_MS [SEED]  a live writer, as a running contextd is
//	chromem query STORE 0|1 COLLECTION VECFILE K [WHERE] [WHERE_DOC]  QueryEmbedding, best first
//
// Output is one JSON value on stdout (the writer: one line per document written, then a summary).
// A store chromem refuses is an answer ({"ok": false, "error": ...}, exit 0); only wrong usage
// exits 2.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/philippgille/chromem-go"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chromem: "+format+"\n", args...)
	os.Exit(2)
}

func compressFlag(s string) bool {
	switch s {
	case "0", "false":
		return false
	case "1", "true":
		return true
	}
	fail("compress must be 0 or 1, not %q", s)
	return false
}

func number(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail("%q is not a whole number", s)
	}
	return n
}

func printJSON(v any) {
	out, err := json.Marshal(v)
	if err != nil {
		fail("encoding the answer: %v", err)
	}
	os.Stdout.Write(append(out, '\n'))
}

// collectionMetadata reads the collection's unexported metadata map through reflection: the
// library offers no getter, and the tests compare it with what guardian reads from 00000000.gob.
func collectionMetadata(c *chromem.Collection) map[string]string {
	field := reflect.ValueOf(c).Elem().FieldByName("metadata")
	meta := map[string]string{}
	if field.IsValid() && !field.IsNil() {
		for _, key := range field.MapKeys() {
			meta[key.String()] = field.MapIndex(key).String()
		}
	}
	return meta
}

// allDocuments asks the collection for every document the public way: a query for as many results
// as it holds returns each one with its content, metadata and embedding.
func allDocuments(c *chromem.Collection) ([]chromem.Result, error) {
	count := c.Count()
	if count == 0 {
		return nil, nil
	}
	var dim int
	for _, id := range documentIDs(c) {
		doc, err := c.GetByID(context.Background(), id)
		if err != nil {
			return nil, err
		}
		dim = len(doc.Embedding)
		break
	}
	probe := make([]float32, dim)
	if dim > 0 {
		probe[0] = 1
	}
	results, err := c.QueryEmbedding(context.Background(), probe, count, nil, nil)
	if err != nil {
		return nil, err
	}
	sort.Slice(results, func(i, j int) bool { return results[i].ID < results[j].ID })
	return results, nil
}

// documentIDs lists the keys of the collection's unexported document map (reflection, read only).
func documentIDs(c *chromem.Collection) []string {
	field := reflect.ValueOf(c).Elem().FieldByName("documents")
	ids := make([]string, 0, field.Len())
	for _, key := range field.MapKeys() {
		ids = append(ids, key.String())
	}
	sort.Strings(ids)
	return ids
}

func load(store string, compress bool) {
	db, err := chromem.NewPersistentDB(store, compress)
	if err != nil {
		printJSON(map[string]any{"ok": false, "error": err.Error(), "collections": map[string]any{}})
		return
	}
	collections := map[string]any{}
	for name, c := range db.ListCollections() {
		collections[name] = map[string]any{"count": c.Count(), "metadata": collectionMetadata(c)}
	}
	printJSON(map[string]any{"ok": true, "error": nil, "collections": collections})
}

type dumpedDocument struct {
	ID        string            `json:"id"`
	Content   string            `json:"content"`
	Metadata  map[string]string `json:"metadata"`
	Embedding []float32         `json:"embedding"` // shortest float32 text, as Go prints a float32
}

func dump(store string, compress bool) {
	db, err := chromem.NewPersistentDB(store, compress)
	if err != nil {
		printJSON(map[string]any{"ok": false, "error": err.Error(), "collections": []any{}})
		return
	}
	all := db.ListCollections()
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	sort.Strings(names)
	collections := []any{}
	for _, name := range names {
		c := all[name]
		results, err := allDocuments(c)
		if err != nil {
			fail("reading collection %q: %v", name, err)
		}
		docs := make([]dumpedDocument, 0, len(results))
		for _, r := range results {
			docs = append(docs, dumpedDocument{r.ID, r.Content, r.Metadata, r.Embedding})
		}
		collections = append(collections, map[string]any{"name": name, "metadata": collectionMetadata(c), "documents": docs})
	}
	printJSON(map[string]any{"ok": true, "error": nil, "collections": collections})
}

var errNoEmbedding = errors.New("this command embeds nothing: every document brings its embedding")

func noEmbedding(context.Context, string) ([]float32, error) { return nil, errNoEmbedding }

type specDocument struct {
	ID        string            `json:"id"`
	Content   string            `json:"content"`
	Metadata  map[string]string `json:"metadata"`
	Embedding []float32         `json:"embedding"`
}

type specCollection struct {
	Name     string            `json:"name"`
	Metadata map[string]string `json:"metadata"`
	Docs     []specDocument    `json:"docs"`
}

func gen(specFile, out string, compress bool) {
	raw, err := os.ReadFile(specFile)
	if err != nil {
		printJSON(map[string]any{"ok": false, "error": err.Error()})
		return
	}
	var spec []specCollection
	if err := json.Unmarshal(raw, &spec); err != nil {
		printJSON(map[string]any{"ok": false, "error": "spec: " + err.Error()})
		return
	}
	db, err := chromem.NewPersistentDB(out, compress)
	if err != nil {
		printJSON(map[string]any{"ok": false, "error": err.Error()})
		return
	}
	counts := map[string]int{}
	for _, sc := range spec {
		c, err := db.GetOrCreateCollection(sc.Name, sc.Metadata, noEmbedding)
		if err != nil {
			printJSON(map[string]any{"ok": false, "error": err.Error()})
			return
		}
		for _, d := range sc.Docs {
			doc := chromem.Document{ID: d.ID, Content: d.Content, Metadata: d.Metadata, Embedding: d.Embedding}
			if err := c.AddDocument(context.Background(), doc); err != nil {
				printJSON(map[string]any{"ok": false, "error": err.Error()})
				return
			}
		}
		counts[sc.Name] = c.Count()
	}
	printJSON(map[string]any{"ok": true, "error": nil, "collections": counts})
}

func unitVector(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var sum float64
	for i := range v {
		x := r.NormFloat64()
		v[i] = float32(x)
		sum += x * x
	}
	norm := float32(math.Sqrt(sum))
	for i := range v {
		v[i] /= norm
	}
	return v
}

func newID(r *rand.Rand) string {
	b := make([]byte, 16)
	r.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

var topics = []string{"connection pool exhausted", "refresh token rotation", "flaky integration test",
	"metadata file missing after crash", "goroutine leak on cancel", "cache invalidation", "schema migration"}

func writer(args []string) {
	if len(args) < 5 || len(args) > 6 {
		fail("usage: writer STORE 0|1 COLLECTION N GAP_MS [SEED]")
	}
	store, compress, name, n, gap := args[0], compressFlag(args[1]), args[2], number(args[3]), number(args[4])
	seed := time.Now().UnixNano()
	if len(args) == 6 {
		seed = int64(number(args[5]))
	}
	r := rand.New(rand.NewSource(seed))
	db, err := chromem.NewPersistentDB(store, compress)
	if err != nil {
		printJSON(map[string]any{"ok": false, "error": err.Error(), "written": 0})
		return
	}
	c, err := db.GetOrCreateCollection(name, map[string]string{"created_by": "guardian-tests-writer"}, noEmbedding)
	if err != nil {
		printJSON(map[string]any{"ok": false, "error": err.Error(), "written": 0})
		return
	}
	for i := 0; i < n; i++ {
		id := newID(r)
		doc := chromem.Document{ID: id, Embedding: unitVector(r, 384),
			Content:  fmt.Sprintf("lesson %d: %s", i, topics[r.Intn(len(topics))]),
			Metadata: map[string]string{"project_id": "live", "tenant_id": "writer", "seq": strconv.Itoa(i)}}
		if err := c.AddDocument(context.Background(), doc); err != nil {
			printJSON(map[string]any{"ok": false, "error": err.Error(), "written": i})
			return
		}
		sum := sha256.Sum256([]byte(id))
		printJSON(map[string]any{"id": id, "file": hex.EncodeToString(sum[:4])})
		if gap > 0 {
			time.Sleep(time.Duration(gap) * time.Millisecond)
		}
	}
	printJSON(map[string]any{"ok": true, "error": nil, "written": n})
}

func parseFilter(arg string) map[string]string {
	if arg == "" {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(arg), &m); err != nil {
		fail("filter %q is not a JSON object of strings: %v", arg, err)
	}
	return m
}

func query(args []string) {
	if len(args) < 5 || len(args) > 7 {
		fail("usage: query STORE 0|1 COLLECTION VECFILE K [WHERE_JSON] [WHERE_DOC_JSON]")
	}
	db, err := chromem.NewPersistentDB(args[0], compressFlag(args[1]))
	if err != nil {
		printJSON(map[string]any{"ok": false, "error": err.Error()})
		return
	}
	raw, err := os.ReadFile(args[3])
	if err != nil {
		fail("reading the query vector: %v", err)
	}
	var vector []float32
	if err := json.Unmarshal(raw, &vector); err != nil {
		fail("the query vector must be a JSON list of numbers: %v", err)
	}
	var where, whereDoc map[string]string
	if len(args) > 5 {
		where = parseFilter(args[5])
	}
	if len(args) > 6 {
		whereDoc = parseFilter(args[6])
	}
	c := db.GetCollection(args[2], noEmbedding)
	if c == nil {
		printJSON(map[string]any{"ok": false, "error": "no collection " + strconv.Quote(args[2])})
		return
	}
	results, err := c.QueryEmbedding(context.Background(), vector, number(args[4]), where, whereDoc)
	if err != nil {
		printJSON(map[string]any{"ok": false, "error": err.Error()})
		return
	}
	answer := make([]map[string]any, 0, len(results))
	for _, r := range results {
		answer = append(answer, map[string]any{"id": r.ID, "similarity": r.Similarity})
	}
	printJSON(answer)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: load|dump|gen|writer|query ...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "load", "dump":
		if len(args) != 2 {
			fail("usage: %s STORE 0|1", os.Args[1])
		}
		if os.Args[1] == "load" {
			load(args[0], compressFlag(args[1]))
		} else {
			dump(args[0], compressFlag(args[1]))
		}
	case "gen":
		if len(args) != 3 {
			fail("usage: gen SPEC.json OUT 0|1")
		}
		gen(args[0], args[1], compressFlag(args[2]))
	case "writer":
		writer(args)
	case "query":
		query(args)
	default:
		fail("unknown command %q (load, dump, gen, writer, query)", os.Args[1])
	}
}

// gobcheck decodes and encodes chromem-go v0.7.0's two records with Go's own encoding/gob,
// so guardian's Python codec can be compared with the real thing. Standard library only.
//
//	gobcheck decode doc|meta FILE...   one JSON object per line, per file
//	gobcheck encode DIR                writes Go-encoded samples into DIR, prints a JSON manifest
package main

import (
	"compress/gzip"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// Document has chromem's field names and types.
type Document struct {
	ID        string
	Metadata  map[string]string
	Embedding []float32
	Content   string
}

// collectionRecord is the unnamed struct chromem writes as 00000000.gob.
type collectionRecord = struct {
	Name     string
	Metadata map[string]string
}

type result struct {
	File     string            `json:"file"`
	Kind     string            `json:"kind"`
	Error    string            `json:"error,omitempty"`
	ID       string            `json:"id,omitempty"`
	Name     string            `json:"name,omitempty"`
	Metadata map[string]string `json:"metadata"`
	NilMap   bool              `json:"nil_map"`
	Bits     []uint32          `json:"bits"`
	Content  string            `json:"content,omitempty"`
}

// openStream mirrors chromem's readFromReader: read two magic bytes, seek back, then gzip or plain.
// Errors carry chromem's own wording, so the Python side can compare reasons exactly.
func openStream(path string) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't open file: %w", err)
	}
	magic := make([]byte, 2)
	if _, err := f.Read(magic); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("couldn't read magic number to determine whether the stream is compressed: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("couldn't reset reader: %w", err)
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("couldn't create gzip reader: %w", err)
		}
		return gz, func() { gz.Close(); f.Close() }, nil
	}
	return f, func() { f.Close() }, nil
}

func bitsOf(values []float32) []uint32 {
	out := make([]uint32, len(values))
	for i, v := range values {
		out[i] = math.Float32bits(v)
	}
	return out
}

func decodeFile(kind, path string) result {
	res := result{File: path, Kind: kind, Bits: []uint32{}}
	r, closeFn, err := openStream(path)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer closeFn()
	dec := gob.NewDecoder(r)
	if kind == "doc" {
		var doc Document
		if err := dec.Decode(&doc); err != nil {
			res.Error = "couldn't decode object: " + err.Error()
			return res
		}
		res.ID, res.Metadata, res.Content = doc.ID, doc.Metadata, doc.Content
		res.NilMap = doc.Metadata == nil
		res.Bits = bitsOf(doc.Embedding)
		return res
	}
	var rec collectionRecord
	if err := dec.Decode(&rec); err != nil {
		res.Error = "couldn't decode object: " + err.Error()
		return res
	}
	res.Name, res.Metadata, res.NilMap = rec.Name, rec.Metadata, rec.Metadata == nil
	return res
}

func writeValue(path string, compress bool, value any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var w io.Writer = f
	var gz *gzip.Writer
	if compress {
		gz = gzip.NewWriter(f)
		w = gz
	}
	if err := gob.NewEncoder(w).Encode(value); err != nil {
		return err
	}
	if gz != nil {
		return gz.Close()
	}
	return nil
}

func samples() (map[string]collectionRecord, map[string]Document) {
	negZero := float32(math.Copysign(0, -1))
	metas := map[string]collectionRecord{
		"meta_nil":   {Name: "no metadata"},
		"meta_empty": {Name: "empty metadata", Metadata: map[string]string{}},
		"meta_one":   {Name: "one key", Metadata: map[string]string{"kind": "checkpoints"}},
		"meta_three": {Name: "three keys", Metadata: map[string]string{"a": "1", "b": "2", "c": "ünïcødé"}},
		"meta_noname": {Metadata: map[string]string{"x": "y"}},
	}
	docs := map[string]Document{
		"doc_nil_meta": {ID: "doc-nil", Embedding: []float32{0.25, -0.5, 1}, Content: "plain"},
		"doc_one_meta": {ID: "doc-one", Metadata: map[string]string{"k": "v"},
			Embedding: []float32{0.1, 0.2, 0.3, 0.4}, Content: "one key"},
		"doc_specials": {ID: "doc-specials", Metadata: map[string]string{},
			Embedding: []float32{0, negZero, 1, -1, 2, 0.5, math.MaxFloat32, -math.MaxFloat32,
				math.SmallestNonzeroFloat32, 1.1754944e-38, float32(math.Inf(1)), float32(math.Inf(-1)),
				math.Float32frombits(0x7fc00000), 3.4028235e+38, 1e-45, 123456.789},
			Content: "specials"},
		"doc_empty": {},
		"doc_many_meta": {ID: "doc-many", Metadata: map[string]string{"a": "1", "b": "2", "c": "3", "d": ""},
			Embedding: []float32{-0.03125}, Content: "línea 1\nline 2 ✓"},
	}
	return metas, docs
}

func encodeSamples(dir string) error {
	metas, docs := samples()
	manifest := []result{}
	for _, compress := range []bool{false, true} {
		ext := ".gob"
		if compress {
			ext = ".gob.gz"
		}
		for name, rec := range metas {
			path := filepath.Join(dir, name+ext)
			if err := writeValue(path, compress, rec); err != nil {
				return err
			}
			manifest = append(manifest, result{File: path, Kind: "meta", Name: rec.Name, Metadata: rec.Metadata,
				NilMap: rec.Metadata == nil, Bits: []uint32{}})
		}
		for name, doc := range docs {
			path := filepath.Join(dir, name+ext)
			if err := writeValue(path, compress, doc); err != nil {
				return err
			}
			manifest = append(manifest, result{File: path, Kind: "doc", ID: doc.ID, Metadata: doc.Metadata,
				NilMap: doc.Metadata == nil, Bits: bitsOf(doc.Embedding), Content: doc.Content})
		}
	}
	return json.NewEncoder(os.Stdout).Encode(manifest)
}

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "encode" {
		if err := encodeSamples(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 3 || os.Args[1] != "decode" {
		fmt.Fprintln(os.Stderr, "usage: gobcheck decode doc|meta FILE... | gobcheck encode DIR")
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, path := range os.Args[3:] {
		if err := out.Encode(decodeFile(os.Args[2], path)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

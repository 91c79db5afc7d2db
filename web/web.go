// Package web is the demo page a dev node serves at / (pushd --dev): index.html, its script
// app.js, and pushd.js, the @pushd/client SDK bundled from client/js by esbuild. pushd.js is
// generated but committed, so `go run ./cmd/pushd --dev` serves the page on a machine without
// npm; regenerate it with `npm run build:web` in client/js (its tests fail when it is stale).
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static/*
var static embed.FS

// Files are the page's files.
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}

// Handler serves the page and its files. Nothing is cached: the page changes with the build.
func Handler() http.Handler {
	files := http.FileServerFS(Files())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

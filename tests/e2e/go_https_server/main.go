// An HTTPS API stand-in written in Go for the end-to-end tests: Go's net/http over crypto/tls,
// serving HTTP/1.1 and HTTP/2 (negotiated by ALPN, on by default), as dockerd, kube-apiserver
// and MKE's controller do. The tests build it with Debian's golang-go, stdlib only, offline.
//
// usage: go_https_server ADDR CERT KEY [CLIENT_CA]
//
// With CLIENT_CA, client certificates signed by it are asked for and verified (not required),
// as dockerd --tlsverify and MKE's controller do with client bundles.
// It prints "listening ADDR" once it accepts connections. Every answer is JSON:
//
//	POST .../create        201 {"Id": <64 hex chars derived from the body>}
//	POST /auth/login       200 {"auth_token": <a fresh random token>} for any
//	                       {"username","password"} (MKE's login; nothing is checked)
//	GET  /stream?n=N       200, N chunks of JSON 100 ms apart, each flushed
//	GET  /status/NNN       NNN
//	GET  /missing/...      404 {"message": "Not Found"}
//	anything else          200 {"method":..., "path":..., "proto":...}
//
// With MAT_GO_ACCESS_LOG=FILE in the environment, every request the handler served is appended
// to FILE, one line each, once the handler returned (the differential test, test_hostile.py,
// compares them with the audit lines):
//
//	served REMOTE_ADDR PROTO METHOD URI STATUS CANCELED
//
// METHOD and URI are Go-quoted strings (strconv.Quote), STATUS the status the handler wrote
// (200 when it wrote none), CANCELED 1 when the request's context was done when the handler
// returned (the client reset the stream or closed the connection: the answer may not have been
// sent), else 0.
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// accessLog wraps h so that every request it served is logged to f (see the package comment).
func accessLog(h http.HandlerFunc, f *os.File) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		canceled := 0
		if r.Context().Err() != nil {
			canceled = 1
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(f, "served %s %s %s %s %d %d\n", r.RemoteAddr, r.Proto,
			strconv.Quote(r.Method), strconv.Quote(r.RequestURI), rec.status, canceled)
	})
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/create"):
		sum := sha256.Sum256(append([]byte(r.URL.Path), body...))
		writeJSON(w, http.StatusCreated, map[string]string{"Id": hex.EncodeToString(sum[:])})
	case r.URL.Path == "/stream":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "{\"event\":%d}\n", i)
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			time.Sleep(100 * time.Millisecond)
		}
	case r.Method == http.MethodPost && r.URL.Path == "/auth/login":
		var login struct{ Username, Password string }
		if json.Unmarshal(body, &login) != nil || login.Username == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "bad login"})
			return
		}
		token := make([]byte, 24)
		_, _ = rand.Read(token)
		writeJSON(w, http.StatusOK, map[string]string{"auth_token": hex.EncodeToString(token)})
	case strings.HasPrefix(r.URL.Path, "/missing/"):
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
	case strings.HasPrefix(r.URL.Path, "/status/"):
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil || code < 200 || code > 599 {
			code = http.StatusBadRequest
		}
		writeJSON(w, code, map[string]string{"message": http.StatusText(code)})
	default:
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"method": r.Method, "path": r.URL.Path, "proto": r.Proto, "bytes": len(body)})
	}
}

func main() {
	if len(os.Args) != 4 && len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: go_https_server ADDR CERT KEY [CLIENT_CA]")
		os.Exit(2)
	}
	cert, err := tls.LoadX509KeyPair(os.Args[2], os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	config := &tls.Config{Certificates: []tls.Certificate{cert}}
	if len(os.Args) == 5 {
		pem, err := os.ReadFile(os.Args[4])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		config.ClientCAs = x509.NewCertPool()
		if !config.ClientCAs.AppendCertsFromPEM(pem) {
			fmt.Fprintln(os.Stderr, "no certificate in", os.Args[4])
			os.Exit(1)
		}
		config.ClientAuth = tls.VerifyClientCertIfGiven
	}
	var handler http.Handler = http.HandlerFunc(handle)
	if path := os.Getenv("MAT_GO_ACCESS_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		handler = accessLog(handle, f)
	}
	srv := &http.Server{Handler: handler, TLSConfig: config}
	fmt.Printf("listening %s\n", ln.Addr())
	if err := srv.ServeTLS(ln, "", ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// connhold opens many TLS connections to an HTTPS server, makes one HTTP/1.1 request on each
// and then keeps them all open and idle, for the memory figure of the benchmark (bench.py):
// what each idle connection that the auditor tracks costs it.
//
// usage: connhold ADDR N [CONCURRENCY]
//
// It prints "ready N" on stdout once N connections have had their answer (or "failed ..." and
// exits 1), then holds them until its stdin is closed.
package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
)

func open(addr string, cfg *tls.Config) (net.Conn, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: connhold ADDR N [CONCURRENCY]")
		os.Exit(2)
	}
	addr := os.Args[1]
	n, _ := strconv.Atoi(os.Args[2])
	concurrency := 64
	if len(os.Args) > 3 {
		concurrency, _ = strconv.Atoi(os.Args[3])
	}
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				conn, err := open(addr, cfg)
				if err != nil {
					errs <- err
					continue
				}
				conns[i] = conn
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err, failed := <-errs; failed {
		fmt.Printf("failed %d of %d: %v\n", len(errs)+1, n, err)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", n)
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, conn := range conns {
		conn.Close()
	}
}

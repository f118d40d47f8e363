// A Go program without crypto/tls, for the end-to-end test that an unsupported target is
// reported in one clear line and skipped: it only waits to be killed.
package main

import (
	"fmt"
	"time"
)

func main() {
	fmt.Println("waiting")
	time.Sleep(time.Hour)
}

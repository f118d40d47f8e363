// A Go program without crypto/tls: go_binary_test expects InspectGoBinary to recognise it as
// Go and to report that it has nothing to probe. It is never run.
package main

import "fmt"

func main() {
	fmt.Println("hello")
}

// Command runner-cache-server starts the cache server a workflow runner embeds — the real
// `pkg/artifactcache` of nektos/act or of Gitea's act, linked from the Go module proxy by
// scripts/runners — on its own, on 127.0.0.1, so tests and scripts/bench can talk to it the way
// a job on that runner does. It prints the variables a job would get, then serves until killed:
//
//	runner-cache-server --port N --dir DIR
//	ACTIONS_CACHE_URL=http://127.0.0.1:N/<token>/
//	ACTIONS_RESULTS_URL=
//	ACTIONS_RUNTIME_TOKEN=<unused by these servers>
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	port := flag.Uint("port", 0, "port on 127.0.0.1 (0: any free one)")
	dir := flag.String("dir", "", "where the server keeps its entries")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "runner-cache-server: --dir is required")
		os.Exit(2)
	}
	url, err := start(*dir, uint16(*port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "runner-cache-server:", err)
		os.Exit(1)
	}
	// The runners hand jobs the URL with one trailing slash.
	fmt.Printf("ACTIONS_CACHE_URL=%s/\n", strings.TrimSuffix(url, "/"))
	fmt.Println("ACTIONS_RESULTS_URL=")
	fmt.Println("ACTIONS_RUNTIME_TOKEN=runner-cache-server")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}

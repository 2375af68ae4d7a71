// Command forgejo-cache-proxy wires the Forgejo runner's cache the way its daemon does
// (internal/app/run/runner.go: setupCache, then one AddRun per task), for a job started by
// `forgejo-runner exec`, whose own cache server has no proxy in front and so refuses every call.
// scripts/runners builds it inside the runner's extracted module, so it links the runner's own
// act/artifactcache and act/cacheproxy packages.
//
//	forgejo-cache-proxy --secret S --dir DIR        the runner's cache server and its proxy
//	forgejo-cache-proxy --secret S --external URL   the proxy only, in front of `forgejo-runner
//	                                                cache-server` (cache.external_server)
//
// It registers one run (--repo, --run, and --write-isolation-key for a pull request), prints the
// URL the job gets, `ACTIONS_CACHE_URL=http://127.0.0.1:<port>/<run id>/`, and serves until its
// standard input closes or it is killed.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"code.forgejo.org/forgejo/runner/v12/act/artifactcache"
	"code.forgejo.org/forgejo/runner/v12/act/cacheproxy"
)

func main() {
	secret := flag.String("secret", "", "the cache secret shared by the proxy and the server")
	dir := flag.String("dir", "", "where the runner's cache server keeps its entries")
	external := flag.String("external", "", "URL of an external `forgejo-runner cache-server`")
	repo := flag.String("repo", "owner/repo", "the repository of the run")
	run := flag.String("run", "1", "the run number")
	isolation := flag.String("write-isolation-key", "", "the write isolation key (pull requests: refs/pull/N/head)")
	flag.Parse()
	if *secret == "" || (*dir == "") == (*external == "") {
		fmt.Fprintln(os.Stderr, "forgejo-cache-proxy: --secret and one of --dir or --external are required")
		os.Exit(2)
	}
	logger := logrus.New()
	logger.Out = os.Stderr

	serverURL := strings.TrimSuffix(*external, "/")
	if serverURL == "" {
		server, err := artifactcache.StartHandler(*dir, "127.0.0.1", 0, *secret, logger.WithField("module", "cache_request"))
		if err != nil {
			fail(err)
		}
		serverURL = server.ExternalURL()
	}
	proxy, err := cacheproxy.StartHandler(serverURL, "127.0.0.1", 0, "", *secret, logger.WithField("module", "cache_proxy"))
	if err != nil {
		fail(err)
	}
	timestamp := strconv.FormatInt(time.Now().Unix(), 10)
	runID, err := proxy.AddRun(proxy.CreateRunData(*repo, *run, timestamp, *isolation))
	if err != nil {
		fail(err)
	}
	fmt.Printf("ACTIONS_CACHE_URL=%s/%s/\n", proxy.ExternalURL(), runID)
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "forgejo-cache-proxy:", err)
	os.Exit(1)
}

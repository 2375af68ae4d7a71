//go:build !gitea

package main

import "github.com/nektos/act/pkg/artifactcache"

// start runs nektos/act's cache server; its URL carries the server's random token as a path.
func start(dir string, port uint16) (string, error) {
	handler, err := artifactcache.StartHandler(dir, "", "127.0.0.1", port, nil)
	if err != nil {
		return "", err
	}
	return handler.ExternalURL(), nil
}

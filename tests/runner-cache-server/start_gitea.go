//go:build gitea

package main

import "github.com/nektos/act/pkg/artifactcache"

// start runs Gitea's act cache server (its module still declares nektos/act's path).
func start(dir string, port uint16) (string, error) {
	handler, err := artifactcache.StartHandler(dir, "127.0.0.1", port, nil)
	if err != nil {
		return "", err
	}
	return handler.ExternalURL(), nil
}

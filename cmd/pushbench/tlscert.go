package main

import (
	"os"
	"path/filepath"

	"github.com/pushd/pushd/internal/pushtest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into the run's
// directory (once) and returns their paths.
func (c *cluster) selfSigned() (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(c.tmp, "tls.crt"), filepath.Join(c.tmp, "tls.key")
	if _, err := os.Stat(certFile); err == nil {
		return certFile, keyFile, nil
	}
	return certFile, keyFile, pushtest.WriteSelfSigned(certFile, keyFile, "pushbench")
}

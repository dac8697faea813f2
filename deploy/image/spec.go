package main

import "time"

// What the image is, in one place: the builder writes it, and the
// Dockerfile test holds the Dockerfile to the same values.
const (
	uid, gid   = 65532, 65532 // "tollgate" in rootfs/etc/passwd; the nonroot uid of distroless images
	user       = "65532:65532"
	binaryPath = "/usr/local/bin/tollgate"
	bundlePath = "/etc/tollgate/bundle" // bundles/tollgate of the commit
	dataPath   = "/data"                // the embedded store; mount a volume here
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
	licenceDoc = "/usr/share/doc/tollgate/LICENSE"
	port       = "8181/tcp"
	sourceURL  = "https://github.com/tollgate/tollgate"
	licenses   = "Apache-2.0"
)

// The entrypoint is the binary and the command is serve, so that
// `docker run IMAGE token create …` runs another subcommand on the same
// store; serve's flags come from the environment (every flag reads
// TOLLGATE_<FLAG>), so a flag given on the command line still wins.
var (
	entrypoint = []string{binaryPath}
	command    = []string{"serve"}
	env        = []string{
		"PATH=/usr/local/bin",
		"TOLLGATE_ADDR=0.0.0.0:8181",
		"TOLLGATE_BUNDLE=" + bundlePath,
		"TOLLGATE_DATA_DIR=" + dataPath,
	}
)

// labels are the OCI annotations of the image's configuration.
func labels(version, revision string, created time.Time) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "tollgate",
		"org.opencontainers.image.description": "Policy-as-code deployment gate: may this pipeline run now?",
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.revision":    revision,
		"org.opencontainers.image.created":     created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.source":      sourceURL,
		"org.opencontainers.image.licenses":    licenses,
	}
}

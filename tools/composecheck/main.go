// Command composecheck loads a Compose file with compose-go, the library Docker Compose
// itself uses: schema validation, interpolation, normalization and the consistency checks
// (depends_on targets, named volumes and networks, ...). It needs no Docker engine.
//
// On success it prints the fully resolved project as JSON on stdout, so tests can assert
// on what `docker compose config` would produce; on failure it prints the loader's error
// on stderr and exits with status 1.
//
// Only the variables given with -env are visible to interpolation (never the caller's
// environment or a .env file), so a run is reproducible on any machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var files, env listFlag
	flag.Var(&files, "f", "compose file (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE visible to interpolation (repeatable)")
	flag.Parse()
	if len(files) == 0 {
		fmt.Fprintln(os.Stderr, "composecheck: at least one -f FILE is required")
		os.Exit(2)
	}
	for _, kv := range env {
		if !strings.Contains(kv, "=") {
			fmt.Fprintf(os.Stderr, "composecheck: -env %q is not KEY=VALUE\n", kv)
			os.Exit(2)
		}
	}
	workdir, err := filepath.Abs(filepath.Dir(files[0]))
	if err != nil {
		fail(err)
	}
	opts, err := cli.NewProjectOptions(
		files,
		cli.WithWorkingDirectory(workdir),
		cli.WithEnv(env),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fail(err)
	}
	if _, err := os.Stdout.Write(append(out, '\n')); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "composecheck: %v\n", err)
	os.Exit(1)
}

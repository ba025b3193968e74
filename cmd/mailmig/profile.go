package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	rpprof "runtime/pprof"
	"runtime/trace"
	"time"
)

// pprofEnv names the environment variable that serves the net/http/pprof
// endpoints on an address while a vandelay import or export runs.
const pprofEnv = "MAILMIG_PPROF"

// blockProfileRate is the block profile's sampling rate while
// --blockprofile or MAILMIG_PPROF is on: one event per microsecond spent
// blocked. Finer rates cost a clock read on every channel operation and
// lock handover, which is what the profile is trying to measure.
const blockProfileRate = int(time.Microsecond)

// profileFlags are the profiling options of the long-running vandelay
// commands (import, export), so that a slow run is explained by a profile
// of that very run rather than by a rebuilt benchmark (docs/import.md,
// "Profiling").
type profileFlags struct {
	cpu, mem, block, trace string
}

func (p *profileFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.cpu, "cpuprofile", "", "write a CPU profile of the run to `FILE` (go tool pprof)")
	fs.StringVar(&p.mem, "memprofile", "", "write an allocation profile (allocs, with in-use heap) at the end of the run to `FILE`")
	fs.StringVar(&p.block, "blockprofile", "", "write a blocking profile (channels, locks, select) at the end of the run to `FILE`")
	fs.StringVar(&p.trace, "trace", "", "write an execution trace of the run to `FILE` (go tool trace)")
}

// start begins what the flags and MAILMIG_PPROF ask for. The returned stop
// writes the end-of-run profiles and closes the files; it reports failures
// on the logger, as a profile is never worth failing the run for. A file
// that cannot be created is an error before the run starts.
func (p *profileFlags) start(log *slog.Logger) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	fail := func(err error) (func(), error) {
		stop()
		return func() {}, err
	}
	if p.cpu != "" {
		f, err := os.Create(p.cpu)
		if err != nil {
			return fail(fmt.Errorf("--cpuprofile: %w", err))
		}
		if err := rpprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fail(fmt.Errorf("--cpuprofile: %w", err))
		}
		stops = append(stops, func() {
			rpprof.StopCPUProfile()
			logCloseErr(log, f.Close(), p.cpu)
		})
	}
	if p.trace != "" {
		f, err := os.Create(p.trace)
		if err != nil {
			return fail(fmt.Errorf("--trace: %w", err))
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			return fail(fmt.Errorf("--trace: %w", err))
		}
		stops = append(stops, func() {
			trace.Stop()
			logCloseErr(log, f.Close(), p.trace)
		})
	}
	addr := os.Getenv(pprofEnv)
	if p.block != "" || addr != "" {
		runtime.SetBlockProfileRate(blockProfileRate)
		runtime.SetMutexProfileFraction(10)
		stops = append(stops, func() {
			runtime.SetBlockProfileRate(0)
			runtime.SetMutexProfileFraction(0)
		})
	}
	if p.mem != "" {
		// Create the file now, so that a bad path fails before the run.
		f, err := os.Create(p.mem)
		if err != nil {
			return fail(fmt.Errorf("--memprofile: %w", err))
		}
		stops = append(stops, func() { writeProfile(log, f, "allocs") })
	}
	if p.block != "" {
		f, err := os.Create(p.block)
		if err != nil {
			return fail(fmt.Errorf("--blockprofile: %w", err))
		}
		stops = append(stops, func() { writeProfile(log, f, "block") })
	}
	if addr != "" {
		srv, ln, err := servePprof(log, addr)
		if err != nil {
			return fail(fmt.Errorf("%s=%s: %w", pprofEnv, addr, err))
		}
		log.Warn("pprof endpoint listening", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
		stops = append(stops, func() { srv.Close() })
	}
	return stop, nil
}

func writeProfile(log *slog.Logger, f *os.File, name string) {
	if name == "allocs" {
		runtime.GC() // the in-use figures as of the end of the run
	}
	if err := rpprof.Lookup(name).WriteTo(f, 0); err != nil {
		log.Error("profile not written", "profile", name, "err", err)
	}
	logCloseErr(log, f.Close(), f.Name())
}

func logCloseErr(log *slog.Logger, err error, path string) {
	if err != nil {
		log.Error("profile not written", "path", path, "err", err)
	}
}

// servePprof serves the net/http/pprof handlers on their own mux (never
// http.DefaultServeMux, which a blank import of net/http/pprof would fill
// for every server in the process).
func servePprof(log *slog.Logger, addr string) (*http.Server, net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Debug("pprof endpoint stopped", "err", err)
		}
	}()
	return srv, ln, nil
}

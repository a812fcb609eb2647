package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"jumpfleet/adminapi"
	"jumpfleet/engine"
	"jumpfleet/events"
	"jumpfleet/packages"
)

func init() {
	commands["status"] = command{"status [--watch [--interval 1s] [--until-done]]", cmdStatus}
	commands["settings get"] = command{"settings get", simple("GET", "/v1/settings", printSettings)}
	commands["settings set"] = command{"settings set NAME VALUE [NAME VALUE ...]   (e.g. settings set max-concurrent 500)", cmdSettingsSet}
	commands["pause"] = command{"pause            (no new upgrade starts; upgrades in flight go on)", simple("POST", "/v1/pause", printSettings)}
	commands["resume"] = command{"resume", simple("POST", "/v1/resume", printSettings)}
	commands["release publish"] = command{"release publish --id ID [--kind site|base] [--requires ID] [--key FILE] --package PLATFORM=VERSION=FILE ...", cmdPublish}
	commands["release list"] = command{"release list", simple("GET", "/v1/releases", printReleases)}
	commands["clients list"] = command{"clients list [--state S] [--kind K] [--platform P] [--version V] [--online true|false] [--q PREFIX] [--limit N] [--cursor C] [--all]", cmdClientsList}
	commands["clients show"] = command{"clients show ID", cmdClientsShow}
	commands["jump"] = command{"jump ID          (what a console does: refused and queued first if outdated)", cmdJump}
	commands["retry"] = command{"retry ID | retry --all-failed [--limit N]", cmdRetry}
	commands["installer create"] = command{"installer create --kind active|passive|jumpoint", cmdInstallerCreate}
	commands["installer list"] = command{"installer list", simple("GET", "/v1/installers", printInstallers)}
	commands["console-token create"] = command{"console-token create NAME", cmdConsoleToken}
	commands["events"] = command{"events [--types upgraded,failed]   (follow the live event stream)", cmdEvents}
}

// simple is a command without arguments: one request, then print.
func simple(method, path string, print func(e *env, raw json.RawMessage) error) func(*flag.FlagSet) func(*env, []string) error {
	return func(fs *flag.FlagSet) func(*env, []string) error {
		return func(e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %q", args)
			}
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, method, path, nil, &raw); err != nil {
				return err
			}
			return output(e, raw, print)
		}
	}
}

// output prints raw as JSON with --json, else with print.
func output(e *env, raw json.RawMessage, print func(*env, json.RawMessage) error) error {
	if e.json {
		_, err := fmt.Fprintf(e.out, "%s\n", strings.TrimSpace(string(raw)))
		return err
	}
	return print(e, raw)
}

func printSettings(e *env, raw json.RawMessage) error {
	var s events.Settings
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "max-concurrent\t%d\n", s.MaxConcurrent)
	fmt.Fprintf(tw, "starts-per-sec\t%g\n", s.StartsPerSec)
	fmt.Fprintf(tw, "start-burst\t%d\n", s.StartBurst)
	fmt.Fprintf(tw, "bytes-per-sec\t%d (%s/s)\n", s.BytesPerSec, human(float64(s.BytesPerSec)))
	fmt.Fprintf(tw, "lease-time\t%v\n", time.Duration(s.LeaseTime))
	fmt.Fprintf(tw, "retry-limit\t%d\n", s.RetryLimit)
	fmt.Fprintf(tw, "retry-base\t%v\n", time.Duration(s.RetryBase))
	fmt.Fprintf(tw, "retry-max\t%v\n", time.Duration(s.RetryMax))
	fmt.Fprintf(tw, "paused\t%v\n", s.Paused)
	return tw.Flush()
}

func human(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return strconv.FormatFloat(b, 'f', -1, 64) + " " + units[i]
}

// settingKinds are the settings' names and how their values are parsed.
var settingKinds = map[string]string{
	"max_concurrent": "int", "starts_per_sec": "float", "start_burst": "int", "bytes_per_sec": "int",
	"lease_time": "duration", "retry_limit": "int", "retry_base": "duration", "retry_max": "duration", "paused": "bool",
}

func settingNames() string {
	var ns []string
	for n := range settingKinds {
		ns = append(ns, strings.ReplaceAll(n, "_", "-"))
	}
	sort.Strings(ns)
	return strings.Join(ns, ", ")
}

func cmdSettingsSet(fs *flag.FlagSet) func(*env, []string) error {
	return func(e *env, args []string) error {
		if len(args) == 0 || len(args)%2 != 0 {
			return usagef("want NAME VALUE pairs; names: %s", settingNames())
		}
		patch := map[string]any{}
		for i := 0; i < len(args); i += 2 {
			name := strings.ReplaceAll(strings.ToLower(args[i]), "-", "_")
			v := args[i+1]
			var err error
			switch settingKinds[name] {
			case "int":
				patch[name], err = strconv.ParseInt(v, 10, 64)
			case "float":
				patch[name], err = strconv.ParseFloat(v, 64)
			case "bool":
				patch[name], err = strconv.ParseBool(v)
			case "duration":
				_, err = time.ParseDuration(v)
				patch[name] = v
			default:
				return usagef("unknown setting %q; names: %s", args[i], settingNames())
			}
			if err != nil {
				return usagef("%s %q: not a %s", args[i], v, settingKinds[name])
			}
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "PATCH", "/v1/settings", patch, &raw); err != nil {
			return err
		}
		return output(e, raw, printSettings)
	}
}

func cmdStatus(fs *flag.FlagSet) func(*env, []string) error {
	watch := fs.Bool("watch", false, "keep watching: a live progress bar with the ETA")
	interval := fs.Duration("interval", time.Second, "refresh interval with --watch")
	untilDone := fs.Bool("until-done", false, "with --watch: exit once nothing is pending, upgrading or unseen")
	return func(e *env, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *interval < 10*time.Millisecond {
			return usagef("--interval must be at least 10ms")
		}
		get := func() (adminapi.StatusBody, json.RawMessage, error) {
			var raw json.RawMessage
			var s adminapi.StatusBody
			if err := e.client.Do(e.ctx, "GET", "/v1/status", nil, &raw); err != nil {
				return s, nil, err
			}
			return s, raw, json.Unmarshal(raw, &s)
		}
		if !*watch {
			s, raw, err := get()
			if err != nil {
				return err
			}
			if e.json {
				return output(e, raw, nil)
			}
			printStatus(e, &s)
			return nil
		}
		t := time.NewTicker(*interval)
		defer t.Stop()
		for {
			s, raw, err := get()
			if err != nil {
				if e.ctx.Err() != nil {
					return nil
				}
				return err
			}
			if e.json {
				fmt.Fprintf(e.out, "%s\n", strings.TrimSpace(string(raw)))
			} else {
				fmt.Fprintf(e.out, "\r%s\x1b[K", progressLine(&s))
			}
			if *untilDone && remaining(&s) == 0 {
				if !e.json {
					fmt.Fprintln(e.out)
				}
				return nil
			}
			select {
			case <-e.ctx.Done():
				if !e.json {
					fmt.Fprintln(e.out)
				}
				return nil
			case <-t.C:
			}
		}
	}
}

func remaining(s *adminapi.StatusBody) int {
	return s.ByState["pending"] + s.ByState["upgrading"] + s.Outdated
}

// progressLine is one line: a bar of current clients, the counts and the ETA.
func progressLine(s *adminapi.StatusBody) string {
	const width = 30
	cur := s.ByState["current"] - s.Outdated
	frac := 1.0
	if s.Clients > 0 {
		frac = float64(cur) / float64(s.Clients)
	}
	n := int(frac * width)
	bar := strings.Repeat("#", n) + strings.Repeat(".", width-n)
	paused := ""
	if s.Paused {
		paused = " PAUSED"
	}
	return fmt.Sprintf("[%s] %5.1f%%  %d/%d current · %d upgrading (max %d) · %d pending · %d failed · %d/min · ETA %s%s",
		bar, frac*100, cur, s.Clients, s.ByState["upgrading"], s.MaxConcurrent, s.ByState["pending"], s.ByState["failed"],
		s.UpgradesPerMin, eta(s.ETASeconds), paused)
}

func eta(sec float64) string {
	switch {
	case sec < 0:
		return "unknown"
	case sec == 0:
		return "done"
	}
	return time.Duration(sec * float64(time.Second)).Round(time.Second).String()
}

func printStatus(e *env, s *adminapi.StatusBody) {
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	site := s.SiteRelease
	if site == "" {
		site = "(none published)"
	}
	var plats []string
	for p, v := range s.Site {
		plats = append(plats, p+" "+v)
	}
	sort.Strings(plats)
	fmt.Fprintf(tw, "site release\t%s\t%s\n", site, strings.Join(plats, ", "))
	fmt.Fprintf(tw, "clients\t%d\tonline %d, offline %d\n", s.Clients, s.Online, s.Offline)
	fmt.Fprintf(tw, "states\tcurrent %d\tpending %d · upgrading %d · failed %d · outdated, not seen since the release %d\n",
		s.ByState["current"]-s.Outdated, s.ByState["pending"], s.ByState["upgrading"], s.ByState["failed"], s.Outdated)
	var kinds []string
	for k := range s.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		m := s.ByKind[k]
		fmt.Fprintf(tw, "  %s\t%d online\tcurrent %d · pending %d · upgrading %d · failed %d\n", k, m["online"], m["current"], m["pending"], m["upgrading"], m["failed"])
	}
	paused := ""
	if s.Paused {
		paused = "  PAUSED"
	}
	fmt.Fprintf(tw, "in flight\t%d / %d\tstarts %g/s · %s/s%s\n", s.InFlight, s.MaxConcurrent, s.StartsPerSec, human(float64(s.BytesPerSec)), paused)
	fmt.Fprintf(tw, "queue\tjump %d\tnormal %d\n", s.JumpLane, s.NormalLane)
	fmt.Fprintf(tw, "rate\t%d upgrades/min\tmean upgrade %.1fs · ETA %s\n", s.UpgradesPerMin, s.MeanUpgradeS, eta(s.ETASeconds))
	_ = tw.Flush()
}

// packageFlag collects --package PLATFORM=VERSION=FILE.
type packageFlag []string

func (p *packageFlag) String() string     { return strings.Join(*p, ",") }
func (p *packageFlag) Set(v string) error { *p = append(*p, v); return nil }

func cmdPublish(fs *flag.FlagSet) func(*env, []string) error {
	id := fs.String("id", "", "release id (letters, digits, '.', '-', '_')")
	kind := fs.String("kind", "site", "site (clients upgrade) or base (base software; no client packages)")
	requires := fs.String("requires", "", "id of a release that must be installed first")
	key := fs.String("key", "", "release-signing key (default DATA/release.key)")
	var pkgs packageFlag
	fs.Var(&pkgs, "package", "PLATFORM=VERSION=FILE, repeatable (e.g. windows-x64=24.3.1-r7=./jc-win64.pkg)")
	return func(e *env, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *id == "" {
			return usagef("--id is required")
		}
		if *kind == "site" && len(pkgs) == 0 {
			return usagef("a site release needs at least one --package")
		}
		body := map[string]any{"id": *id, "kind": *kind}
		if *requires != "" {
			body["requires"] = *requires
		}
		if len(pkgs) > 0 {
			keyPath := *key
			if keyPath == "" {
				keyPath = filepath.Join(e.data, "release.key")
			}
			if _, err := os.Stat(keyPath); err != nil {
				return fmt.Errorf("release key: %w (use --key or --data)", err)
			}
			priv, err := packages.LoadOrCreateKey(keyPath)
			if err != nil {
				return err
			}
			var list []map[string]any
			for _, p := range pkgs {
				parts := strings.SplitN(p, "=", 3)
				if len(parts) != 3 {
					return usagef("--package %q: want PLATFORM=VERSION=FILE", p)
				}
				if _, err := engine.ParsePlatform(parts[0]); err != nil {
					return usagef("--package %q: %v", p, err)
				}
				v, err := engine.ParseVersion(parts[1])
				if err != nil {
					return usagef("--package %q: %v", p, err)
				}
				content, err := os.ReadFile(parts[2])
				if err != nil {
					return err
				}
				sum := sha256.Sum256(content)
				m := packages.Manifest{Release: *id, Platform: parts[0], Version: v.String(), Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
				list = append(list, map[string]any{"platform": m.Platform, "version": m.Version, "size": m.Size, "sha256": m.SHA256,
					"signature": base64.StdEncoding.EncodeToString(packages.Sign(priv, m)),
					"content":   base64.StdEncoding.EncodeToString(content)})
			}
			body["packages"] = list
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "POST", "/v1/releases", body, &raw); err != nil {
			return err
		}
		return output(e, raw, func(e *env, raw json.RawMessage) error {
			var r adminapi.ReleaseOut
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "published %s release %s with %d package(s)\n", r.Kind, r.ID, len(r.Targets))
			return nil
		})
	}
}

func printReleases(e *env, raw json.RawMessage) error {
	var b adminapi.ReleasesBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return err
	}
	if len(b.Releases) == 0 {
		fmt.Fprintln(e.out, "no releases")
		return nil
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tREQUIRES\tPUBLISHED\tTARGETS")
	for _, r := range b.Releases {
		var ts []string
		for _, t := range r.Targets {
			ts = append(ts, fmt.Sprintf("%s %s (%s)", t.Platform, t.Version, human(float64(t.Size))))
		}
		req := r.Requires
		if req == "" {
			req = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Kind, req, r.PublishedAt.Format(time.RFC3339), strings.Join(ts, ", "))
	}
	return tw.Flush()
}

func cmdClientsList(fs *flag.FlagSet) func(*env, []string) error {
	q := url.Values{}
	for _, name := range []string{"state", "kind", "platform", "version", "online", "q", "limit", "cursor"} {
		fs.Func(name, "filter or paging parameter "+name+" (docs/API.md)", func(v string) error { q.Set(name, v); return nil })
	}
	all := fs.Bool("all", false, "follow next_cursor to the end")
	return func(e *env, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		var clients []adminapi.ClientJSON
		var next string
		for {
			var page adminapi.ClientsBody
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "GET", "/v1/clients?"+q.Encode(), nil, &raw); err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return err
			}
			clients = append(clients, page.Clients...)
			next = page.NextCursor
			if !*all || next == "" {
				break
			}
			q.Set("cursor", next)
		}
		if e.json {
			b, _ := json.Marshal(adminapi.ClientsBody{Clients: clients, NextCursor: next})
			fmt.Fprintf(e.out, "%s\n", b)
			return nil
		}
		tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tPLATFORM\tVERSION\tTARGET\tSTATE\tONLINE\tQUEUE\tATTEMPTS\tLAST ERROR")
		for _, c := range clients {
			queue := "-"
			if c.Position > 0 {
				queue = fmt.Sprintf("%s #%d", c.Lane, c.Position)
			}
			target := "-"
			if !c.Target.IsZero() {
				target = c.Target.String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\t%d\t%s\n", c.ID, c.Kind, c.Platform, c.Version, target, c.State, c.Online, queue, c.Attempts, c.LastError)
		}
		_ = tw.Flush()
		if next != "" {
			fmt.Fprintf(e.out, "more: --cursor %s (or --all)\n", next)
		}
		return nil
	}
}

func oneID(args []string) (string, error) {
	if len(args) != 1 {
		return "", usagef("want one client id")
	}
	if _, err := engine.ParseClientID(args[0]); err != nil {
		return "", usagef("%q is not a client id (32 hex digits)", args[0])
	}
	return args[0], nil
}

func cmdClientsShow(fs *flag.FlagSet) func(*env, []string) error {
	return func(e *env, args []string) error {
		id, err := oneID(args)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "GET", "/v1/clients/"+id, nil, &raw); err != nil {
			return err
		}
		return output(e, raw, func(e *env, raw json.RawMessage) error {
			var c adminapi.ClientBody
			if err := json.Unmarshal(raw, &c); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "id\t%s\nkind\t%s\nplatform\t%s\nversion\t%s\n", c.ID, c.Kind, c.Platform, c.Version)
			if !c.Target.IsZero() {
				fmt.Fprintf(tw, "target\t%s\n", c.Target)
			}
			fmt.Fprintf(tw, "state\t%s\nonline\t%v\n", c.State, c.Online)
			if c.Position > 0 {
				fmt.Fprintf(tw, "queue\t%s lane, position %d\n", c.Lane, c.Position)
			}
			fmt.Fprintf(tw, "attempts\t%d\n", c.Attempts)
			if c.LastError != "" {
				fmt.Fprintf(tw, "last error\t%s\n", c.LastError)
			}
			for _, t := range []struct {
				name string
				at   time.Time
			}{{"last check-in", c.LastCheckIn}, {"queued", c.QueuedAt}, {"started", c.StartedAt}, {"finished", c.FinishedAt}, {"lease until", c.Lease}, {"retry at", c.RetryAt}} {
				if !t.at.IsZero() {
					fmt.Fprintf(tw, "%s\t%s\n", t.name, t.at.UTC().Format(time.RFC3339))
				}
			}
			_ = tw.Flush()
			if len(c.History) > 0 {
				fmt.Fprintln(e.out, "history:")
				for _, h := range c.History {
					extra := ""
					if h.Error != "" {
						extra = " " + h.Error
					}
					fmt.Fprintf(e.out, "  %s  %-16s %s%s\n", h.At.UTC().Format(time.RFC3339), h.Type, h.State, extra)
				}
			}
			return nil
		})
	}
}

func cmdJump(fs *flag.FlagSet) func(*env, []string) error {
	return func(e *env, args []string) error {
		id, err := oneID(args)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "POST", "/v1/clients/"+id+"/jump", nil, &raw); err != nil {
			return err
		}
		return output(e, raw, func(e *env, raw json.RawMessage) error {
			var j adminapi.JumpBody
			if err := json.Unmarshal(raw, &j); err != nil {
				return err
			}
			switch j.Result {
			case "allowed":
				fmt.Fprintf(e.out, "allowed: %s is current (%s) and online\n", id, j.Version)
			case "offline":
				fmt.Fprintf(e.out, "offline: %s is current (%s) but not connected\n", id, j.Version)
			default:
				fmt.Fprintf(e.out, "upgrade pending: %s runs %s, target %s; moved to the %s lane, position %d\n", id, j.Version, j.Target, j.Lane, j.Position)
			}
			return nil
		})
	}
}

func cmdRetry(fs *flag.FlagSet) func(*env, []string) error {
	allFailed := fs.Bool("all-failed", false, "retry every failed client")
	limit := fs.Int("limit", 0, "with --all-failed: at most this many")
	return func(e *env, args []string) error {
		var raw json.RawMessage
		if *allFailed {
			if len(args) > 0 {
				return usagef("--all-failed takes no client id")
			}
			body := map[string]any{}
			if *limit > 0 {
				body["limit"] = *limit
			}
			if err := e.client.Do(e.ctx, "POST", "/v1/retry-failed", body, &raw); err != nil {
				return err
			}
			return output(e, raw, func(e *env, raw json.RawMessage) error {
				var r struct{ Retried int }
				if err := json.Unmarshal(raw, &r); err != nil {
					return err
				}
				fmt.Fprintf(e.out, "retried %d failed client(s)\n", r.Retried)
				return nil
			})
		}
		id, err := oneID(args)
		if err != nil {
			return err
		}
		if err := e.client.Do(e.ctx, "POST", "/v1/clients/"+id+"/retry", nil, &raw); err != nil {
			return err
		}
		return output(e, raw, func(e *env, raw json.RawMessage) error {
			var c adminapi.ClientJSON
			if err := json.Unmarshal(raw, &c); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "retried %s: now %s\n", id, c.State)
			return nil
		})
	}
}

func cmdInstallerCreate(fs *flag.FlagSet) func(*env, []string) error {
	kind := fs.String("kind", "", "active, passive or jumpoint")
	return func(e *env, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		if _, err := engine.ParseKind(*kind); err != nil {
			return usagef("--kind: %v", err)
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "POST", "/v1/installers", map[string]string{"kind": *kind}, &raw); err != nil {
			return err
		}
		return output(e, raw, func(e *env, raw json.RawMessage) error {
			var r struct {
				Token     string `json:"token"`
				Installer struct {
					ID      string `json:"id"`
					SiteTag string `json:"site_tag"`
				} `json:"installer"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "installer %s for %s clients, site release %q (shown once):\n%s\n", r.Installer.ID, *kind, r.Installer.SiteTag, r.Token)
			return nil
		})
	}
}

func printInstallers(e *env, raw json.RawMessage) error {
	var b struct {
		Installers []struct {
			ID      string    `json:"id"`
			SiteTag string    `json:"site_tag"`
			Kind    string    `json:"kind"`
			Created time.Time `json:"created"`
			Valid   bool      `json:"valid"`
		} `json:"installers"`
		SiteRelease string `json:"site_release"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSITE RELEASE\tCREATED\tVALID")
	for _, i := range b.Installers {
		valid := "yes"
		if !i.Valid {
			valid = "no: made for an older site release, regenerate"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.ID, i.Kind, i.SiteTag, i.Created.UTC().Format(time.RFC3339), valid)
	}
	return tw.Flush()
}

func cmdConsoleToken(fs *flag.FlagSet) func(*env, []string) error {
	return func(e *env, args []string) error {
		if len(args) != 1 {
			return usagef("want a console name")
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "POST", "/v1/console-tokens", map[string]string{"name": args[0]}, &raw); err != nil {
			return err
		}
		return output(e, raw, func(e *env, raw json.RawMessage) error {
			var r map[string]string
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "console token for %s (shown once):\n%s\n", r["name"], r["token"])
			return nil
		})
	}
}

func cmdEvents(fs *flag.FlagSet) func(*env, []string) error {
	types := fs.String("types", "", "comma-separated event types to show")
	return func(e *env, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		q := ""
		if *types != "" {
			q = "types=" + url.QueryEscape(*types)
		}
		err := e.client.Events(e.ctx, q, func(ev adminapi.SSE) bool {
			if ev.Event == "gap" && !e.json {
				fmt.Fprintln(e.out, "(events were missed: the stream fell behind)")
				return true
			}
			if e.json || ev.Data == nil {
				fmt.Fprintf(e.out, "%s\n", ev.Data)
				return true
			}
			var r events.Record
			if json.Unmarshal(ev.Data, &r) != nil {
				fmt.Fprintf(e.out, "%s %s\n", ev.Event, ev.Data)
				return true
			}
			fmt.Fprintf(e.out, "%s  %-8s %-17s %s %s\n", r.At.UTC().Format(time.RFC3339Nano), r.ID, r.Type, r.Client, r.Error)
			return true
		})
		if errors.Is(err, e.ctx.Err()) {
			return nil
		}
		return err
	}
}

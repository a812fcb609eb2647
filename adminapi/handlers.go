package adminapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"math"
	"net/http"
	"strconv"
	"time"

	"jumpfleet/engine"
	"jumpfleet/events"
	"jumpfleet/identity"
	"jumpfleet/packages"
)

// requestTimeout bounds how long a handler waits for the engine.
const requestTimeout = 30 * time.Second

func ctxOf(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), requestTimeout)
}

// StatusBody is GET /v1/status: the engine's status plus the newest site
// release.
type StatusBody struct {
	engine.Status
	SiteRelease string `json:"site_release"`
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := ctxOf(r)
	defer cancel()
	v, err := a.cfg.Node.Do(ctx, func(e *engine.Engine, now time.Time) (any, error) {
		return StatusBody{Status: e.Status(now), SiteRelease: siteRelease(e.Releases())}, nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// siteRelease is the id of the newest site release ("" before any): the
// tag installers are bound to.
func siteRelease(rels []engine.Release) string {
	for i := len(rels) - 1; i >= 0; i-- {
		if rels[i].Kind == engine.ReleaseSite {
			return rels[i].ID
		}
	}
	return ""
}

func (a *API) siteTag(ctx context.Context) (string, error) {
	rels, err := a.cfg.Node.Releases(ctx)
	if err != nil {
		return "", err
	}
	return siteRelease(rels), nil
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := ctxOf(r)
	defer cancel()
	s, err := a.cfg.Node.Settings(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, events.SettingsFrom(s))
}

// SettingsPatch is the body of PATCH /v1/settings: absent (or null) fields
// are left as they are.
type SettingsPatch struct {
	MaxConcurrent *int             `json:"max_concurrent"`
	StartsPerSec  *float64         `json:"starts_per_sec"`
	StartBurst    *int             `json:"start_burst"`
	BytesPerSec   *int64           `json:"bytes_per_sec"`
	LeaseTime     *events.Duration `json:"lease_time"`
	RetryLimit    *int             `json:"retry_limit"`
	RetryBase     *events.Duration `json:"retry_base"`
	RetryMax      *events.Duration `json:"retry_max"`
	Paused        *bool            `json:"paused"`
}

// Apply changes s by the fields present in p.
func (p *SettingsPatch) Apply(s *engine.Settings) {
	set := func(dst *time.Duration, v *events.Duration) {
		if v != nil {
			*dst = time.Duration(*v)
		}
	}
	if p.MaxConcurrent != nil {
		s.MaxConcurrent = *p.MaxConcurrent
	}
	if p.StartsPerSec != nil {
		s.StartsPerSec = *p.StartsPerSec
	}
	if p.StartBurst != nil {
		s.StartBurst = *p.StartBurst
	}
	if p.BytesPerSec != nil {
		s.BytesPerSec = *p.BytesPerSec
	}
	set(&s.LeaseTime, p.LeaseTime)
	if p.RetryLimit != nil {
		s.RetryLimit = *p.RetryLimit
	}
	set(&s.RetryBase, p.RetryBase)
	set(&s.RetryMax, p.RetryMax)
	if p.Paused != nil {
		s.Paused = *p.Paused
	}
}

func (a *API) patchSettings(w http.ResponseWriter, r *http.Request) {
	var p SettingsPatch
	if err := decode(w, r, a.cfg.MaxBody, &p, false); err != nil {
		writeError(w, err)
		return
	}
	a.updateSettings(w, r, p.Apply)
}

func (a *API) updateSettings(w http.ResponseWriter, r *http.Request, change func(*engine.Settings)) {
	ctx, cancel := ctxOf(r)
	defer cancel()
	// The engine applies the change to a copy and validates the whole
	// result in the same turn: out of range means nothing changes.
	s, err := a.cfg.Node.UpdateSettings(ctx, func(s *engine.Settings) error { change(s); return nil })
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, events.SettingsFrom(s))
}

func (a *API) pause(w http.ResponseWriter, r *http.Request) {
	if err := noBody(w, r, a.cfg.MaxBody); err != nil {
		writeError(w, err)
		return
	}
	a.updateSettings(w, r, func(s *engine.Settings) { s.Paused = true })
}

func (a *API) resume(w http.ResponseWriter, r *http.Request) {
	if err := noBody(w, r, a.cfg.MaxBody); err != nil {
		writeError(w, err)
		return
	}
	a.updateSettings(w, r, func(s *engine.Settings) { s.Paused = false })
}

// noBody accepts an empty body or {}.
func noBody(w http.ResponseWriter, r *http.Request, limit int64) error {
	var empty struct{}
	return decode(w, r, limit, &empty, true)
}

// PackageIn is one package of POST /v1/releases.
type PackageIn struct {
	Platform  engine.Platform `json:"platform"`
	Version   engine.Version  `json:"version"`
	Size      int64           `json:"size"`
	SHA256    string          `json:"sha256"`
	Signature string          `json:"signature"` // base64 ed25519 over the canonical manifest
	Content   *string         `json:"content"`   // base64 package bytes (optional)
}

// ReleaseIn is the body of POST /v1/releases.
type ReleaseIn struct {
	ID       string             `json:"id"`
	Kind     engine.ReleaseKind `json:"kind"`
	Requires string             `json:"requires"`
	Packages []PackageIn        `json:"packages"`
}

// TargetOut is one platform of a release as listed.
type TargetOut struct {
	Platform  engine.Platform `json:"platform"`
	Version   engine.Version  `json:"version"`
	Size      int64           `json:"size,omitempty"`
	SHA256    string          `json:"sha256,omitempty"`
	Signature string          `json:"signature,omitempty"`
}

// ReleaseOut is a release as listed.
type ReleaseOut struct {
	ID          string             `json:"id"`
	Kind        engine.ReleaseKind `json:"kind"`
	Requires    string             `json:"requires,omitempty"`
	PublishedAt time.Time          `json:"published_at"`
	Targets     []TargetOut        `json:"targets,omitempty"`
}

func releaseOut(r engine.Release) ReleaseOut {
	out := ReleaseOut{ID: r.ID, Kind: r.Kind, Requires: r.Requires, PublishedAt: r.PublishedAt}
	for _, t := range r.Targets {
		to := TargetOut{Platform: t.Platform, Version: t.Version}
		if s, err := packages.ParseSigned(t.Package); err == nil {
			if m, err := packages.Parse(s.Manifest); err == nil {
				to.Size, to.SHA256 = m.Size, m.SHA256
			}
			to.Signature = base64.StdEncoding.EncodeToString(s.Signature)
		}
		out.Targets = append(out.Targets, to)
	}
	return out
}

// ReleasesBody is GET /v1/releases.
type ReleasesBody struct {
	Releases    []ReleaseOut `json:"releases"`
	SiteRelease string       `json:"site_release"`
}

func (a *API) listReleases(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := ctxOf(r)
	defer cancel()
	rels, err := a.cfg.Node.Releases(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	body := ReleasesBody{Releases: []ReleaseOut{}, SiteRelease: siteRelease(rels)}
	for _, rel := range rels {
		body.Releases = append(body.Releases, releaseOut(rel))
	}
	writeJSON(w, http.StatusOK, body)
}

func (a *API) publishRelease(w http.ResponseWriter, r *http.Request) {
	var in ReleaseIn
	if err := decode(w, r, a.cfg.MaxReleaseBody, &in, false); err != nil {
		writeError(w, err)
		return
	}
	a.publishMu.Lock()
	defer a.publishMu.Unlock()
	ctx, cancel := ctxOf(r)
	defer cancel()
	rel, err := a.prepareRelease(ctx, &in)
	if err != nil {
		writeError(w, err)
		return
	}
	out, err := a.cfg.Node.PublishRelease(ctx, rel)
	if err != nil {
		writeError(w, err)
		return
	}
	a.cfg.Logger.Info("release published", zapRelease(out)...)
	writeJSON(w, http.StatusCreated, releaseOut(out))
}

// prepareRelease checks everything that can be checked before the engine
// installs the release (signatures, package bytes, duplicate and
// dependency), then stores the package bytes. Package files are keyed by
// (release, platform) and the release id is checked unused first, so a
// refused release never replaces a live package.
func (a *API) prepareRelease(ctx context.Context, in *ReleaseIn) (engine.Release, error) {
	rel := engine.Release{ID: in.ID, Kind: in.Kind, Requires: in.Requires}
	if in.Kind != engine.ReleaseSite && in.Kind != engine.ReleaseBase {
		return rel, errorf(engine.CodeBadRequest, "release kind %q: want site or base", in.Kind)
	}
	if in.Kind == engine.ReleaseBase && len(in.Packages) > 0 {
		return rel, errorf(engine.CodeBadRequest, "base-software release %s must not carry client packages", in.ID)
	}
	if in.Kind == engine.ReleaseSite && len(in.Packages) == 0 {
		return rel, errorf(engine.CodeBadRequest, "site release %s has no packages", in.ID)
	}
	rels, err := a.cfg.Node.Releases(ctx)
	if err != nil {
		return rel, err
	}
	found := in.Requires == ""
	for _, old := range rels {
		if old.ID == in.ID {
			return rel, errorf(engine.CodeDuplicateRelease, "release %s is already installed", in.ID)
		}
		found = found || old.ID == in.Requires
	}
	if !found {
		return rel, errorf(engine.CodeDependencyMissing, "release %s requires %s, which is not installed", in.ID, in.Requires)
	}
	type prepared struct {
		m       packages.Manifest
		sig     []byte
		content []byte
	}
	preps := make([]prepared, 0, len(in.Packages))
	seen := map[engine.Platform]bool{}
	for i, p := range in.Packages {
		if !p.Platform.Valid() || p.Version.IsZero() {
			return rel, errorf(engine.CodeBadRequest, "packages[%d]: platform and version are required", i)
		}
		if seen[p.Platform] {
			return rel, errorf(engine.CodeBadRequest, "release %s names platform %s twice", in.ID, p.Platform)
		}
		seen[p.Platform] = true
		m := packages.Manifest{Release: in.ID, Platform: p.Platform.String(), Version: p.Version.String(), Size: p.Size, SHA256: p.SHA256}
		if err := m.Validate(); err != nil {
			return rel, errorf(CodeBadPackage, "packages[%d] (%s): %v", i, p.Platform, err)
		}
		sig, err := base64.StdEncoding.DecodeString(p.Signature)
		if err != nil || len(sig) != ed25519.SignatureSize {
			return rel, errorf(CodeBadSignature, "packages[%d] (%s): signature must be %d bytes of base64", i, p.Platform, ed25519.SignatureSize)
		}
		if _, err := packages.Verify(a.cfg.ReleaseKey, m.Bytes(), sig); err != nil {
			return rel, errorf(CodeBadSignature, "packages[%d] (%s): the signature does not verify against the release key", i, p.Platform)
		}
		pr := prepared{m: m, sig: sig}
		if p.Content != nil {
			pr.content, err = base64.StdEncoding.DecodeString(*p.Content)
			if err != nil {
				return rel, errorf(CodeBadPackage, "packages[%d] (%s): content is not base64: %v", i, p.Platform, err)
			}
			if int64(len(pr.content)) != m.Size {
				return rel, errorf(CodeBadPackage, "packages[%d] (%s): content has %d bytes, size says %d", i, p.Platform, len(pr.content), m.Size)
			}
		}
		preps = append(preps, pr)
	}
	for i, pr := range preps {
		if pr.content != nil {
			if err := a.cfg.Packages.Put(pr.m, bytes.NewReader(pr.content)); err != nil {
				return rel, errorf(CodeBadPackage, "packages[%d] (%s): %v", i, pr.m.Platform, err)
			}
		} else {
			f, m, err := a.cfg.Packages.Open(pr.m.Release, pr.m.Platform)
			if err != nil {
				return rel, errorf(CodeBadPackage, "packages[%d] (%s): no content given and none stored: %v", i, pr.m.Platform, err)
			}
			_ = f.Close()
			if m != pr.m {
				return rel, errorf(CodeBadPackage, "packages[%d] (%s): the stored package differs from the manifest", i, pr.m.Platform)
			}
		}
		v, _ := engine.ParseVersion(pr.m.Version)
		p, _ := engine.ParsePlatform(pr.m.Platform)
		rel.Targets = append(rel.Targets, engine.Target{Platform: p, Version: v,
			Package: packages.Signed{Manifest: pr.m.Bytes(), Signature: pr.sig}.JSON()})
	}
	return rel, nil
}

// ClientJSON is a client as the API shows it. Lane is shadowed by a
// string so that API clients can decode it too.
type ClientJSON struct {
	engine.ClientInfo
	Lane string `json:"lane"`
}

func clientJSON(c engine.ClientInfo) ClientJSON {
	return ClientJSON{ClientInfo: c, Lane: c.Lane.String()}
}

// ClientsBody is GET /v1/clients.
type ClientsBody struct {
	Clients    []ClientJSON `json:"clients"`
	NextCursor string       `json:"next_cursor"`
}

// MaxPage caps limit in GET /v1/clients.
const MaxPage = 1000

func (a *API) listClients(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f engine.Filter
	var err error
	for name := range q {
		switch name {
		case "state", "kind", "platform", "version", "online", "q", "limit", "cursor":
		default:
			writeError(w, errorf(engine.CodeBadRequest, "unknown query parameter %q", name))
			return
		}
	}
	if s := q.Get("state"); s != "" {
		if f.State, err = engine.ParseState(s); err != nil {
			writeError(w, err)
			return
		}
	}
	if s := q.Get("kind"); s != "" {
		if f.Kind, err = engine.ParseKind(s); err != nil {
			writeError(w, err)
			return
		}
	}
	if s := q.Get("platform"); s != "" {
		if f.Platform, err = engine.ParsePlatform(s); err != nil {
			writeError(w, err)
			return
		}
	}
	if s := q.Get("version"); s != "" {
		if f.Version, err = engine.ParseVersion(s); err != nil {
			writeError(w, err)
			return
		}
	}
	if s := q.Get("online"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, errorf(engine.CodeBadRequest, "online=%q: want true or false", s))
			return
		}
		f.Online = &b
	}
	if s := q.Get("q"); s != "" {
		if len(s) > 32 || !isLowerHex(s) {
			writeError(w, errorf(engine.CodeBadRequest, "q=%q: want a prefix of a client id (lowercase hex)", s))
			return
		}
		f.IDPrefix = s
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > MaxPage {
			writeError(w, errorf(engine.CodeBadRequest, "limit=%q: want 1..%d", s, MaxPage))
			return
		}
	}
	cursor := 0
	if s := q.Get("cursor"); s != "" {
		if cursor, err = strconv.Atoi(s); err != nil || cursor < 0 || cursor >= math.MaxInt32 {
			writeError(w, errorf(CodeBadCursor, "cursor %q was not issued by this API", s))
			return
		}
	}
	ctx, cancel := ctxOf(r)
	defer cancel()
	v, err := a.cfg.Node.Do(ctx, func(e *engine.Engine, now time.Time) (any, error) {
		// Cursors are offsets below Len (clients are never removed), so
		// anything at or past the end was not issued by List.
		if cursor > 0 && cursor >= e.Len() {
			return nil, errorf(CodeBadCursor, "cursor %d is past the end (%d clients)", cursor, e.Len())
		}
		cs, next := e.List(f, cursor, limit)
		out := ClientsBody{Clients: make([]ClientJSON, len(cs)), NextCursor: cursorString(next)}
		for i, c := range cs {
			out.Clients[i] = clientJSON(c)
		}
		return out, nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func cursorString(next int) string {
	if next == 0 {
		return ""
	}
	return strconv.Itoa(next)
}

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ClientBody is GET /v1/clients/{id}.
type ClientBody struct {
	ClientJSON
	History []events.Record `json:"history"`
}

func clientID(r *http.Request) (engine.ClientID, error) {
	return engine.ParseClientID(r.PathValue("id"))
}

func (a *API) client(w http.ResponseWriter, r *http.Request) {
	id, err := clientID(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := ctxOf(r)
	defer cancel()
	c, err := a.cfg.Node.Client(ctx, id)
	if err != nil {
		writeError(w, err)
		return
	}
	h := a.cfg.Ring.Client(id, a.cfg.HistoryLen)
	if h == nil {
		h = []events.Record{}
	}
	writeJSON(w, http.StatusOK, ClientBody{ClientJSON: clientJSON(c), History: h})
}

// JumpBody is the answer of POST /v1/clients/{id}/jump.
type JumpBody struct {
	Result   string         `json:"result"` // allowed, offline, upgrade_pending
	State    engine.State   `json:"state"`
	Lane     string         `json:"lane"`
	Position int            `json:"position,omitempty"`
	Version  engine.Version `json:"version"`
	Target   engine.Version `json:"target,omitzero"`
}

func (a *API) jump(w http.ResponseWriter, r *http.Request) {
	id, err := clientID(r)
	if err == nil {
		err = noBody(w, r, a.cfg.MaxBody)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := ctxOf(r)
	defer cancel()
	ans, err := a.cfg.Node.Jump(ctx, id, 0)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, JumpBody{Result: ans.Result.String(), State: ans.State, Lane: ans.Lane.String(), Position: ans.Position,
		Version: ans.Version, Target: ans.Target})
}

func (a *API) retry(w http.ResponseWriter, r *http.Request) {
	id, err := clientID(r)
	if err == nil {
		err = noBody(w, r, a.cfg.MaxBody)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := ctxOf(r)
	defer cancel()
	v, err := a.cfg.Node.Do(ctx, func(e *engine.Engine, now time.Time) (any, error) {
		if err := e.Retry(now, id); err != nil {
			return nil, err
		}
		c, _ := e.Client(id)
		return clientJSON(c), nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// RetryFailedIn is the optional body of POST /v1/retry-failed.
type RetryFailedIn struct {
	Limit *int `json:"limit"`
}

func (a *API) retryFailed(w http.ResponseWriter, r *http.Request) {
	var in RetryFailedIn
	if err := decode(w, r, a.cfg.MaxBody, &in, true); err != nil {
		writeError(w, err)
		return
	}
	limit := math.MaxInt
	if in.Limit != nil {
		if *in.Limit < 1 {
			writeError(w, errorf(engine.CodeBadRequest, "limit must be at least 1, got %d", *in.Limit))
			return
		}
		limit = *in.Limit
	}
	ctx, cancel := ctxOf(r)
	defer cancel()
	n, err := a.cfg.Node.RetryFailed(ctx, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"retried": n})
}

// InstallerIn is the body of POST /v1/installers.
type InstallerIn struct {
	Kind engine.Kind `json:"kind"`
}

func (a *API) createInstaller(w http.ResponseWriter, r *http.Request) {
	var in InstallerIn
	if err := decode(w, r, a.cfg.MaxBody, &in, false); err != nil {
		writeError(w, err)
		return
	}
	if !in.Kind.Valid() {
		writeError(w, errorf(engine.CodeBadKind, "kind is required: active, passive or jumpoint"))
		return
	}
	ctx, cancel := ctxOf(r)
	defer cancel()
	tag, err := a.siteTag(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	tok, info, err := a.cfg.Identity.CreateInstaller(a.cfg.Now(), tag, in.Kind)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		Token     string                 `json:"token"`
		Installer identity.InstallerInfo `json:"installer"`
	}{tok, info})
}

// InstallersBody is GET /v1/installers.
type InstallersBody struct {
	Installers  []identity.InstallerInfo `json:"installers"`
	SiteRelease string                   `json:"site_release"`
}

func (a *API) listInstallers(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := ctxOf(r)
	defer cancel()
	tag, err := a.siteTag(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	list, err := a.cfg.Identity.ListInstallers(tag)
	if err != nil {
		writeError(w, err)
		return
	}
	if list == nil {
		list = []identity.InstallerInfo{}
	}
	writeJSON(w, http.StatusOK, InstallersBody{Installers: list, SiteRelease: tag})
}

// ConsoleTokenIn is the body of POST /v1/console-tokens.
type ConsoleTokenIn struct {
	Name string `json:"name"`
}

func (a *API) createConsoleToken(w http.ResponseWriter, r *http.Request) {
	var in ConsoleTokenIn
	if err := decode(w, r, a.cfg.MaxBody, &in, false); err != nil {
		writeError(w, err)
		return
	}
	tok, err := a.cfg.Identity.CreateConsoleToken(in.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"token": tok, "name": in.Name})
}

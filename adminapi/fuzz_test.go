package adminapi

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"jumpfleet/engine"
	"jumpfleet/events"
)

// FuzzDecode feeds arbitrary bodies to the strict decoder of the two
// richest request types. It must never panic, every refusal must carry a
// catalogued code, and an accepted settings patch must re-encode and
// decode to the same value.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"max_concurrent": 5, "lease_time": "90s", "paused": true}`, `{"max_concurrent": "5"}`, `{"x": 1}`, `{`, `[]`, `null`,
		`{"id":"2.0.0","kind":"site","packages":[{"platform":"linux-x64","version":"2.0.0-r7","size":3,"sha256":"ab","signature":"AA==","content":"YWJj"}]}`,
		`{"id":"b","kind":"base","requires":"a"} {}`, `{"packages":[{"platform":"amiga"}]}`, `{"retry_base": "1ms", "retry_max": "24h"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		check := func(dst any, fresh func() any, roundTrip bool) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(body))
			w := httptest.NewRecorder()
			err := decode(w, r, 1<<20, dst, false)
			if err != nil {
				var ee *engine.Error
				if !errors.As(err, &ee) {
					t.Fatalf("%q: error without a code: %v", body, err)
				}
				if _, ok := httpStatus[apiError(err).Code]; !ok {
					t.Fatalf("%q: code %s not in the catalogue", body, ee.Code)
				}
				return
			}
			if !roundTrip {
				return
			}
			again, err := json.Marshal(dst)
			if err != nil {
				t.Fatalf("%q: accepted value does not encode: %v", body, err)
			}
			back := fresh()
			if err := json.Unmarshal(again, back); err != nil {
				t.Fatalf("%q: re-encoded %s does not decode: %v", body, again, err)
			}
			if b2, _ := json.Marshal(back); string(b2) != string(again) {
				t.Fatalf("%q: round trip changed %s into %s", body, again, b2)
			}
		}
		check(&SettingsPatch{}, func() any { return &SettingsPatch{} }, true)
		// A release body may decode with zero platforms or versions (absent
		// fields), which prepareRelease refuses; engine zero values do not
		// re-encode, so only the refusal codes are checked here.
		check(&ReleaseIn{}, func() any { return &ReleaseIn{} }, false)
		var s events.Settings
		_ = json.Unmarshal([]byte(body), &s)
	})
}

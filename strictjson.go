package tollgate

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// encoding/json decodes more than it should for a gate whose records are
// evidence: the last of two duplicate keys wins, "BRANCH" fills Branch,
// invalid UTF-8 and lone surrogate escapes become U+FFFD. checkJSON is a
// pre-pass that refuses those, naming the field, before encoding/json
// decodes the value. It is written by hand because no library in our
// dependencies does it (encoding/json/v2 is still an experiment); it is one
// pass over the bytes and allocates only for error messages and for keys
// that carry escapes.

// maxJSONDepth is encoding/json's own nesting limit: past it the pre-pass
// stops and encoding/json reports the error.
const maxJSONDepth = 10000

// schema is what the pre-pass knows of the Go type a JSON value decodes
// into: the exact field names of a struct, the element of a slice or map.
// A nil *schema accepts any keys (an interface, a json.RawMessage).
type schema struct {
	fields map[string]*schema // struct: JSON name → its field's schema
	elem   *schema            // slice, array or map: the element's schema
}

var schemas sync.Map // reflect.Type → *schema

func schemaOf(t reflect.Type) *schema {
	if t == nil {
		return nil
	}
	if s, ok := schemas.Load(t); ok {
		return s.(*schema)
	}
	s := buildSchema(t, map[reflect.Type]*schema{})
	schemas.Store(t, s)
	return s
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func buildSchema(t reflect.Type, building map[reflect.Type]*schema) *schema {
	if s, ok := building[t]; ok {
		return s // a recursive type
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return nil // decodes itself: its keys are its own business
	}
	switch t.Kind() {
	case reflect.Pointer:
		return buildSchema(t.Elem(), building)
	case reflect.Slice, reflect.Array, reflect.Map:
		s := &schema{}
		building[t] = s
		s.elem = buildSchema(t.Elem(), building)
		if s.elem == nil {
			return nil
		}
		return s
	case reflect.Struct:
		s := &schema{fields: map[string]*schema{}}
		building[t] = s
		addFields(s, t, building)
		return s
	}
	return nil
}

// addFields adds t's JSON fields to s as encoding/json sees them: tagged or
// exported names, embedded structs without a name inlined (the shallower
// field wins a name, as in encoding/json).
func addFields(s *schema, t reflect.Type, building map[reflect.Type]*schema) {
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s.fields[name] = buildSchema(f.Type, building)
	}
	for _, et := range embedded {
		inner := &schema{fields: map[string]*schema{}}
		addFields(inner, et, building)
		for name, fs := range inner.fields {
			if _, taken := s.fields[name]; !taken {
				s.fields[name] = fs
			}
		}
	}
}

// pathElem is one step of the path to a value: a key or an array index.
type pathElem struct {
	key   []byte
	index int // -1 for a key
}

// jsonChecker walks one JSON value.
type jsonChecker struct {
	data []byte
	i    int
	path []pathElem
	// at, when above 0, asks for the path of the innermost value whose
	// bytes span offset at (start < at <= end), found once walked.
	at    int
	found string
}

// errStop ends the pre-pass on a syntax error, which encoding/json then
// describes.
var errStop = errors.New("malformed JSON")

// CheckJSON is DecodeStrict's pre-pass alone, for documents whose unknown
// fields are allowed but must not be mistaken for known ones, such as a
// scanner's report: it refuses duplicate keys, keys that differ from a field
// of v's type only by case (encoding/json would fill the field with them),
// invalid UTF-8 and lone surrogates. v is only looked at, never filled.
func CheckJSON(data []byte, v any) error { return checkJSON(data, v) }

// checkJSON reports the first duplicate key, case-variant key, invalid
// UTF-8 or lone surrogate of the JSON value in data, checked against the
// type of v. It returns nil on malformed JSON: encoding/json reports that.
func checkJSON(data []byte, v any) error {
	c := jsonChecker{data: data}
	err := c.value(schemaOf(reflect.TypeOf(v)), 0)
	if err == errStop {
		return nil
	}
	return err
}

func (c *jsonChecker) skipSpace() {
	for c.i < len(c.data) {
		switch c.data[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *jsonChecker) value(s *schema, depth int) error {
	if depth > maxJSONDepth {
		return errStop
	}
	c.skipSpace()
	if c.i >= len(c.data) {
		return errStop
	}
	start := c.i
	var err error
	switch c.data[c.i] {
	case '{':
		err = c.object(s, depth)
	case '[':
		err = c.array(s, depth)
	case '"':
		_, _, err = c.str()
	default:
		c.literal()
	}
	if c.at > start && c.at <= c.i && c.found == "" && err == nil {
		c.found = c.pathString() // inner values end first: the innermost
	}
	return err
}

// literal skips a number, true, false or null: encoding/json checks it.
func (c *jsonChecker) literal() {
	for c.i < len(c.data) {
		switch c.data[c.i] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return
		}
		c.i++
	}
}

// pathAt is the path of the innermost value of the JSON document data
// that spans byte offset, as pathString writes it (projects.x.pipelines,
// items[2]); "" if none does.
func pathAt(data []byte, v any, offset int64) string {
	c := jsonChecker{data: data, at: int(offset)}
	_ = c.value(schemaOf(reflect.TypeOf(v)), 0) // data decoded already: it is well-formed
	return c.found
}

// closes consumes closing if it is the next byte after white space: an
// empty array or object.
func (c *jsonChecker) closes(closing byte) bool {
	c.skipSpace()
	if c.i < len(c.data) && c.data[c.i] == closing {
		c.i++
		return true
	}
	return false
}

// next reads what follows an element or a member: true after a comma,
// false after closing, errStop on anything else (encoding/json describes
// the syntax error).
func (c *jsonChecker) next(closing byte) (more bool, err error) {
	c.skipSpace()
	if c.i >= len(c.data) {
		return false, errStop
	}
	switch c.data[c.i] {
	case ',':
		c.i++
		return true, nil
	case closing:
		c.i++
		return false, nil
	}
	return false, errStop
}

func (c *jsonChecker) array(s *schema, depth int) error {
	c.i++ // [
	var elem *schema
	if s != nil {
		elem = s.elem
	}
	c.path = append(c.path, pathElem{index: 0})
	top := len(c.path) - 1
	if c.closes(']') {
		c.path = c.path[:top]
		return nil
	}
	for n := 0; ; n++ {
		c.path[top].index = n
		if err := c.value(elem, depth+1); err != nil {
			return err
		}
		more, err := c.next(']')
		if err != nil || !more {
			c.path = c.path[:top]
			return err
		}
	}
}

func (c *jsonChecker) object(s *schema, depth int) error {
	c.i++ // {
	var small [16][]byte
	keys := small[:0]
	var seen map[string]bool // once an object has many keys
	c.path = append(c.path, pathElem{index: -1})
	top := len(c.path) - 1
	if c.closes('}') {
		c.path = c.path[:top]
		return nil
	}
	for {
		c.skipSpace()
		if c.i >= len(c.data) || c.data[c.i] != '"' {
			return errStop
		}
		raw, escaped, err := c.str()
		if err != nil {
			c.path[top].key = nil // the error names the object, not a key
			return err
		}
		key := raw
		if escaped {
			var k string
			if err := json.Unmarshal(c.data[c.i-len(raw)-2:c.i], &k); err != nil {
				return errStop
			}
			key = []byte(k)
		}
		c.path[top].key = key
		if seen != nil {
			if seen[string(key)] {
				return c.fail("duplicate key %q: each key may appear once", c.pathString())
			}
			seen[string(key)] = true
		} else {
			for _, k := range keys {
				if bytes.Equal(k, key) {
					return c.fail("duplicate key %q: each key may appear once", c.pathString())
				}
			}
			if len(keys) < len(small) {
				keys = append(keys, key)
			} else {
				seen = make(map[string]bool, 2*len(keys))
				for _, k := range keys {
					seen[string(k)] = true
				}
				seen[string(key)] = true
			}
		}
		var field *schema
		if s != nil && s.fields != nil {
			var ok bool
			if field, ok = s.fields[string(key)]; !ok {
				for name := range s.fields {
					if strings.EqualFold(name, string(key)) {
						c.path[top].key = []byte(name)
						want := c.pathString()
						c.path[top].key = key
						return c.fail("unknown field %q: field names are case-sensitive, did you mean %q?", c.pathString(), want)
					}
				}
			}
		} else if s != nil {
			field = s.elem
		}
		c.skipSpace()
		if c.i >= len(c.data) || c.data[c.i] != ':' {
			return errStop
		}
		c.i++
		if err := c.value(field, depth+1); err != nil {
			return err
		}
		more, err := c.next('}')
		if err != nil || !more {
			c.path = c.path[:top]
			return err
		}
	}
}

// str reads the string at c.i (on its quote) and returns its raw content
// and whether it has escapes. It refuses invalid UTF-8 and lone
// surrogates, which encoding/json would turn into U+FFFD.
func (c *jsonChecker) str() (raw []byte, escaped bool, err error) {
	c.i++ // "
	start := c.i
	for c.i < len(c.data) {
		b := c.data[c.i]
		switch {
		case b == '"':
			c.i++
			return c.data[start : c.i-1], escaped, nil
		case b < 0x20:
			return nil, false, errStop
		case b == '\\':
			escaped = true
			if c.i+1 >= len(c.data) {
				return nil, false, errStop
			}
			if c.data[c.i+1] != 'u' {
				c.i += 2
				continue
			}
			r, ok := c.hex4(c.i + 2)
			if !ok {
				return nil, false, errStop
			}
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return nil, false, c.fail("%s: lone UTF-16 surrogate \\u%04x at byte %d: strings must be valid Unicode", c.pathString(), r, c.i)
			case r >= 0xD800 && r <= 0xDBFF:
				low, ok := rune(0), false
				if c.i+7 < len(c.data) && c.data[c.i+6] == '\\' && c.data[c.i+7] == 'u' {
					low, ok = c.hex4(c.i + 8)
				}
				if !ok || low < 0xDC00 || low > 0xDFFF {
					return nil, false, c.fail("%s: lone UTF-16 surrogate \\u%04x at byte %d: strings must be valid Unicode", c.pathString(), r, c.i)
				}
				c.i += 12
			default:
				c.i += 6
			}
		case b < utf8.RuneSelf:
			c.i++
		default:
			r, size := utf8.DecodeRune(c.data[c.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false, c.fail("%s: invalid UTF-8 (byte 0x%02x at byte %d): strings must be valid UTF-8", c.pathString(), b, c.i)
			}
			c.i += size
		}
	}
	return nil, false, errStop
}

// hex4 reads the four hex digits at i.
func (c *jsonChecker) hex4(i int) (rune, bool) {
	if i+4 > len(c.data) {
		return 0, false
	}
	var r rune
	for _, b := range c.data[i : i+4] {
		switch {
		case '0' <= b && b <= '9':
			b -= '0'
		case 'a' <= b && b <= 'f':
			b -= 'a' - 10
		case 'A' <= b && b <= 'F':
			b -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(b)
	}
	return r, true
}

func (c *jsonChecker) fail(format string, args ...any) error {
	return Errorf(EInvalid, format, args...)
}

// pathString is the path to the current value as messages name fields:
// metadata.run_id, scan.report.runs[0].results[2]; "the body" at the top.
func (c *jsonChecker) pathString() string {
	var b strings.Builder
	for _, p := range c.path {
		if p.index >= 0 {
			fmt.Fprintf(&b, "[%d]", p.index)
			continue
		}
		if p.key == nil {
			break
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strings.ToValidUTF8(string(p.key), "\uFFFD"))
	}
	if b.Len() == 0 {
		return "the body"
	}
	return b.String()
}

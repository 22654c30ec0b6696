package jobspec

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// HCL's own text writer (hcl.NewDiagnosticTextWriter) shows neither the
// column nor which part of a line is wrong unless it may print ANSI colour
// codes. Job files are checked in CI logs and editors as often as in
// terminals, so diagnostics are written here in the same layout with a
// file:line:col position and a caret marker under the offending range.

// WriteDiagnostics writes diags as text: severity and summary, the position
// as file:line:col with the enclosing block, the source lines with the
// offending range marked by carets, then the detail wrapped at width
// columns (0 means no wrapping). files supplies the source snippets.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, width int) error {
	var buf bytes.Buffer
	for _, diag := range diags {
		writeDiagnostic(&buf, files, diag, width)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing diagnostics: %w", err)
	}
	return nil
}

func writeDiagnostic(buf *bytes.Buffer, files map[string]*hcl.File, diag *hcl.Diagnostic, width int) {
	fmt.Fprintf(buf, "%s: %s\n\n", severityWord(diag.Severity), diag.Summary)
	if diag.Subject != nil {
		fmt.Fprintf(buf, "  on %s", location(*diag.Subject))
		snip := snippetFor(files, diag)
		if snip != nil && snip.context != "" {
			fmt.Fprintf(buf, ", in %s", snip.context)
		}
		buf.WriteString(":\n")
		if snip != nil {
			snip.writeText(buf)
		}
		buf.WriteString("\n")
	}
	if diag.Detail != "" {
		buf.WriteString(wrap(diag.Detail, width))
		buf.WriteString("\n\n")
	}
}

func severityWord(severity hcl.DiagnosticSeverity) string {
	if severity == hcl.DiagWarning {
		return "Warning"
	}
	return "Error"
}

// snippet is the part of a source file shown with a diagnostic: whole lines
// around the subject.
type snippet struct {
	// context names the enclosing block, such as `app "db"`.
	context   string
	code      []byte
	startLine int
	// highlightStart and highlightEnd are byte offsets of the subject in
	// code.
	highlightStart, highlightEnd int
}

// snippetFor cuts the lines of the diagnostic's context (or subject) out of
// its file; nil when the file's text is not at hand or the range does not
// fit it, as for a file changed since parsing.
func snippetFor(files map[string]*hcl.File, diag *hcl.Diagnostic) *snippet {
	if diag.Subject == nil {
		return nil
	}
	file := files[diag.Subject.Filename]
	if file == nil || file.Bytes == nil {
		return nil
	}
	src := file.Bytes
	shown := *diag.Subject
	if diag.Context != nil {
		shown = hcl.RangeOver(*diag.Context, *diag.Subject)
	}
	if shown.Start.Byte < 0 || shown.End.Byte > len(src) || shown.Start.Byte > shown.End.Byte {
		return nil
	}
	start := bytes.LastIndexByte(src[:shown.Start.Byte], '\n') + 1
	// A range that ends just after a newline shows no part of the next line.
	lastByte := shown.End.Byte
	if lastByte > shown.Start.Byte && src[lastByte-1] == '\n' {
		lastByte--
	}
	end := len(src)
	if i := bytes.IndexByte(src[lastByte:], '\n'); i >= 0 {
		end = lastByte + i
	}
	snip := &snippet{
		code:           bytes.TrimRight(src[start:end], "\r"),
		startLine:      shown.Start.Line,
		highlightStart: clamp(diag.Subject.Start.Byte-start, 0, end-start),
		highlightEnd:   clamp(diag.Subject.End.Byte-start, 0, end-start),
	}
	if nav, ok := file.Nav.(interface{ ContextString(offset int) string }); ok {
		snip.context = nav.ContextString(diag.Subject.Start.Byte)
	}
	return snip
}

func clamp(v, lo, hi int) int {
	return max(lo, min(v, hi))
}

// writeText prints the snippet's lines with numbers, and under each line
// carets marking the part of the subject on it. An empty subject (a place
// where something is missing) gets one caret.
func (s *snippet) writeText(buf *bytes.Buffer) {
	lineStart := 0
	for i, line := range bytes.Split(s.code, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		lineEnd := lineStart + len(line)
		fmt.Fprintf(buf, "  %4d: %s\n", s.startLine+i, line)
		from, to := max(s.highlightStart, lineStart), min(s.highlightEnd, lineEnd)
		if from == lineStart && s.highlightStart < lineStart {
			// A subject continuing from the line above is marked from the
			// first visible character, not under the indentation.
			from += len(line) - len(bytes.TrimLeft(line, " \t"))
		}
		emptyHere := s.highlightStart == s.highlightEnd && s.highlightStart >= lineStart && s.highlightStart <= lineEnd
		if from < to || emptyHere {
			buf.WriteString("        ")
			buf.WriteString(indentLike(line[:from-lineStart]))
			buf.WriteString(strings.Repeat("^", max(1, utf8.RuneCount(line[from-lineStart:max(from, to)-lineStart]))))
			buf.WriteString("\n")
		}
		lineStart = lineEnd + 1
	}
}

// indentLike returns blanks as wide as prefix on screen: tabs stay tabs so
// the carets line up however the terminal expands them.
func indentLike(prefix []byte) string {
	var b strings.Builder
	for _, r := range string(prefix) {
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// wrap breaks each paragraph of text at spaces so lines stay within width.
func wrap(text string, width int) string {
	if width <= 0 {
		return text
	}
	var out strings.Builder
	for i, paragraph := range strings.Split(text, "\n") {
		if i > 0 {
			out.WriteByte('\n')
		}
		column := 0
		for j, word := range strings.Fields(paragraph) {
			n := utf8.RuneCountInString(word)
			if j > 0 && column+1+n > width {
				out.WriteByte('\n')
				column = 0
			} else if j > 0 {
				out.WriteByte(' ')
				column++
			}
			out.WriteString(word)
			column += n
		}
	}
	return out.String()
}

// JSONDiagnostic is the machine-readable form of a diagnostic, for -json
// output. Lines and columns count from 1, bytes from 0.
type JSONDiagnostic struct {
	// Severity is "error" or "warning".
	Severity string       `json:"severity"`
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail,omitempty"`
	Range    *JSONRange   `json:"range,omitempty"`
	Snippet  *JSONSnippet `json:"snippet,omitempty"`
}

// JSONRange is the source range a diagnostic is about.
type JSONRange struct {
	Filename string  `json:"filename"`
	Start    JSONPos `json:"start"`
	End      JSONPos `json:"end"`
}

// JSONPos is a position in a source file.
type JSONPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// JSONSnippet is the source shown with a diagnostic.
type JSONSnippet struct {
	// Context names the enclosing block, such as `app "db"`.
	Context string `json:"context,omitempty"`
	// Code is the whole source lines around the range.
	Code      string `json:"code"`
	StartLine int    `json:"start_line"`
	// HighlightStartOffset and HighlightEndOffset are byte offsets of the
	// range within Code.
	HighlightStartOffset int `json:"highlight_start_offset"`
	HighlightEndOffset   int `json:"highlight_end_offset"`
}

// JSONDiagnostics converts diags for JSON output; files supplies snippets.
func JSONDiagnostics(files map[string]*hcl.File, diags hcl.Diagnostics) []JSONDiagnostic {
	out := make([]JSONDiagnostic, 0, len(diags))
	for _, diag := range diags {
		jd := JSONDiagnostic{
			Severity: strings.ToLower(severityWord(diag.Severity)),
			Summary:  diag.Summary,
			Detail:   diag.Detail,
		}
		if r := diag.Subject; r != nil {
			jd.Range = &JSONRange{
				Filename: r.Filename,
				Start:    JSONPos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
				End:      JSONPos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte},
			}
		}
		if snip := snippetFor(files, diag); snip != nil {
			jd.Snippet = &JSONSnippet{
				Context:              snip.context,
				Code:                 string(snip.code),
				StartLine:            snip.startLine,
				HighlightStartOffset: snip.highlightStart,
				HighlightEndOffset:   snip.highlightEnd,
			}
		}
		out = append(out, jd)
	}
	return out
}

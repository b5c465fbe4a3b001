/**
 * Text from outside (names inside an archive, link targets, registry answers)
 * reaches terminals and logs only escaped: a C1 control such as U+009B opens a
 * terminal escape sequence just as ESC does, and a newline in a name would
 * forge a line of a report. printableName escapes every control character;
 * printableText keeps newlines and tabs (multi-line messages) and escapes the rest.
 * printableJson is JSON.stringify with the controls it leaves raw (DEL, C1,
 * U+2028/U+2029) written as \uXXXX escapes: the same document, parsed, and
 * nothing a terminal or a log viewer acts on.
 */

// C0 controls, DEL and C1 controls; the line and paragraph separators end a line in some viewers.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const CONTROL_BUT_LAYOUT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g;

function escape(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** A name or value for one line of text: every control character escaped as \xNN. */
export function printableName(text: string): string {
  return text.replace(CONTROL, escape);
}

/** A whole message: newlines and tabs kept, every other control character escaped. */
export function printableText(text: string): string {
  return text.replace(CONTROL_BUT_LAYOUT, escape);
}

// JSON.stringify escapes C0 controls itself; these it leaves as they are.
const JSON_RAW_CONTROLS = /[\u007f-\u009f\u2028\u2029]/g;

/** JSON.stringify, then every control JSON leaves raw escaped as \uXXXX (still valid JSON, same value). */
export function printableJson(value: unknown, space?: number): string {
  return (JSON.stringify(value, null, space) ?? 'null').replace(JSON_RAW_CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

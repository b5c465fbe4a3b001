/**
 * A byte-count progress bar on stderr, drawn only for a person at a terminal:
 * CI logs and pipes get nothing but the step lines.
 */
export interface Progress {
  advance(bytes: number): void;
  done(): void;
}

const SILENT: Progress = { advance() {}, done() {} };
const REDRAW_MS = 100;

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export function createProgress(label: string, total?: number): Progress {
  if (!process.stderr.isTTY) return SILENT;
  let seen = 0;
  let lastDraw = 0;
  const draw = () => {
    const width = 30;
    if (total && total > 0) {
      const ratio = Math.min(1, seen / total);
      const filled = Math.round(ratio * width);
      process.stderr.write(
        `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${formatBytes(seen)} / ${formatBytes(total)}`,
      );
    } else {
      process.stderr.write(`\r${label} ${formatBytes(seen)}`);
    }
  };
  return {
    advance(bytes) {
      seen += bytes;
      const now = Date.now();
      if (now - lastDraw >= REDRAW_MS) {
        lastDraw = now;
        draw();
      }
    },
    done() {
      draw();
      process.stderr.write('\n');
    },
  };
}

export { formatBytes };

export interface StatusLine {
  /** Replaces the line with this text (one line, already printable). */
  update(text: string): void;
  /** Clears the line, so what is printed next starts on a clean one. */
  done(): void;
}

/**
 * One line of status redrawn in place (install --wait while the health gate
 * decides), for a person at a terminal only: a pipe or a log gets nothing.
 */
export function createStatusLine(): StatusLine {
  if (!process.stderr.isTTY) return { update() {}, done() {} };
  let drawn = false;
  return {
    update(text) {
      const width = Math.max(20, (process.stderr.columns || 80) - 1);
      process.stderr.write(`\r\u001b[K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
      drawn = true;
    },
    done() {
      if (drawn) process.stderr.write('\r\u001b[K');
      drawn = false;
    },
  };
}

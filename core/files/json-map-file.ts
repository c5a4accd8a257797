import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'

/**
 * A map of entries kept in a JSON file (`{"<field>": {key: entry}}`, mode 0600), for small
 * stores of secrets' hashes (device credentials, API keys). `entries()` re-reads the file only
 * when it changed, so another process's writes take effect; `save()` writes a temporary file
 * and renames it, so a reader never sees half a file.
 */
export class JsonMapFile<E> {
  private map = new Map<string, E>()
  private mtimeMs = -1

  constructor(
    private readonly file: string,
    private readonly field: string,
  ) {}

  /** The current entries (read again when the file changed). */
  entries(): Map<string, E> {
    let mtime: number
    try {
      mtime = statSync(this.file).mtimeMs
    } catch {
      this.map = new Map()
      return this.map
    }
    if (mtime !== this.mtimeMs) {
      const doc = JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, Record<string, E>>
      this.map = new Map(Object.entries(doc[this.field] ?? {}))
      this.mtimeMs = mtime
    }
    return this.map
  }

  /** Writes the entries as they are now. */
  save(): void {
    mkdirSync(path.dirname(this.file), { recursive: true })
    const tmp = `${this.file}.${process.pid}.tmp`
    writeFileSync(tmp, `${JSON.stringify({ [this.field]: Object.fromEntries(this.map) }, null, 2)}\n`, {
      mode: 0o600,
    })
    renameSync(tmp, this.file)
    this.mtimeMs = statSync(this.file).mtimeMs
  }
}

/**
 * Bounds on YAML and JSON text read from outside (config files, Istio resources), checked before
 * any recursive step reads it (decision D48): the `yaml` package's composer, `toJS` and a
 * document's lookups all recurse, and a stack overflow inside them has been seen to abort the
 * process on the next parse, so depth must be refused before they run.
 */
import { type CST, LineCounter, Parser } from 'yaml'

/**
 * The deepest nesting of collections accepted. The config schema's deepest value is 6 levels
 * down (`routes[0].match[0].headers.x.exact`), an Istio resource's about 8; the bound leaves room
 * for data that a schema then refuses with a path, and keeps every recursive step far from the
 * stack's limit.
 */
export const MAX_DEPTH = 64

/** How many alias expansions a YAML document may make (the `yaml` package's default, made explicit). */
export const MAX_ALIASES = 100

/**
 * The line of the first collection nested deeper than {@link MAX_DEPTH} in `text`, or
 * `undefined` when there is none. The `yaml` package's CST parser keeps its own stack (it does
 * not recurse), and this walk keeps one too, so a text nested 100,000 deep costs time linear in
 * its size and no call stack. JSON is YAML flow syntax: one walk serves both formats.
 */
export function tooDeepAt(text: string): number | undefined {
  const lines = new LineCounter()
  const stack: Array<{ token: CST.Token | undefined; depth: number }> = []
  for (const token of new Parser(lines.addNewLine).parse(text)) stack.push({ token, depth: 0 })
  while (stack.length > 0) {
    const { token, depth } = stack.pop()!
    if (token === undefined) continue
    if (token.type === 'document') {
      stack.push({ token: token.value, depth })
    } else if (token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection') {
      if (depth + 1 > MAX_DEPTH) return lines.linePos(token.offset).line
      for (const item of token.items) {
        if ('key' in item) stack.push({ token: item.key ?? undefined, depth: depth + 1 })
        stack.push({ token: item.value, depth: depth + 1 })
      }
    }
  }
  return undefined
}

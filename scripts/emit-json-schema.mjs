// Writes the configuration's JSON Schema (for editors and config validation in CI) next to the
// build, from the same schema that validates at runtime: dist/config.schema.json.
import { writeFileSync } from 'node:fs'
import { configJsonSchema } from '../dist/index.js'

const url = new URL('../dist/config.schema.json', import.meta.url)
writeFileSync(url, `${JSON.stringify(configJsonSchema(), null, 2)}\n`)
console.log(`wrote ${url.pathname}`)

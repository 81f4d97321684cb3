/**
 * One task of the in-process list (bench/in-process.ts), called `calls` times after a warm-up,
 * for bench/instructions.ts to count under callgrind. Prints nothing; exits when done.
 *
 * Usage: node --predictable --import tsx bench/instructions-child.ts <task id> <calls>
 */
import { inProcessTasks } from './in-process.js'
import { loadMeshlet } from './lib.js'

const [id, callsArg] = process.argv.slice(2)
const calls = Number(callsArg)
const { tasks, close } = inProcessTasks(await loadMeshlet())
const task = tasks.find((t) => t.id === id)
if (task === undefined || !(calls >= 0)) {
  process.stderr.write(`instructions-child: unknown task ${id} or bad count ${callsArg}\n`)
  process.exit(2)
}
const call = task.call
// Warm-up: the counted difference between two runs is then optimised code only.
for (let i = 0; i < 20_000; i++) await call()
for (let i = 0; i < calls; i++) await call()
await close()
process.exit(0)

/**
 * Istio's own resources (test/fixtures/istio-current: every file of Istio's
 * samples/bookinfo/networking, a file of its validation test data and pilot's
 * tests/testdata/config traffic files, all valid for Istio): each imports without a refusal
 * (Bookinfo's beside its DestinationRules, into a config `createMesh` accepts); what is not
 * translated is listed, never thrown.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../src/mesh/config/config.js'
import { fromIstio } from '../src/mesh/istio/from-istio.js'

const dir = fileURLToPath(new URL('./fixtures/istio-current', import.meta.url))
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'))
const read = (name: string) => readFileSync(join(dir, name), 'utf8')

const versions = ['v1', 'v2', 'v3'].map((version, i) => ({
  url: `http://10.0.0.${i + 1}:9080`,
  labels: { version },
}))

describe("Istio's samples", () => {
  it('holds every file of samples/bookinfo/networking', () => {
    expect(files.length).toBeGreaterThanOrEqual(22)
  })

  it.each(files.filter((f) => f.startsWith('testdata-')))('imports %s without a refusal', (file) => {
    expect(() => fromIstio(read(file))).not.toThrow()
  })

  it.each(files.filter((f) => !f.startsWith('testdata-')))(
    'imports %s without a refusal into a config createMesh accepts',
    (file) => {
      const { config, unsupported } = fromIstio([read('destination-rule-all.yaml'), read(file)], {
        reviews: versions,
        ratings: versions,
        details: versions,
        productpage: versions,
      })
      for (const svc of Object.values(config.services)) svc.endpoints ??= ['http://10.0.9.9:80']
      expect(() => parseConfig(config)).not.toThrow()
      expect(Array.isArray(unsupported)).toBe(true)
    },
  )

  it('keeps the sidecar routes of virtual-service-all-v1.yaml exact, by every Kubernetes name', () => {
    const { config, unsupported } = fromIstio(
      [read('destination-rule-all.yaml'), read('virtual-service-all-v1.yaml')],
      undefined,
      { defaults: 'meshlet' },
    )
    expect(unsupported).toEqual([])
    expect(config.routes?.map((r) => [r.match, r.route])).toEqual(
      ['productpage', 'reviews', 'ratings', 'details'].map((s) => [
        [{ host: s }],
        [{ service: s, subset: 'v1' }],
      ]),
    )
    expect(config.services['reviews']?.hosts).toEqual([
      'reviews.default',
      'reviews.default.svc',
      'reviews.default.svc.cluster.local',
    ])
  })
})

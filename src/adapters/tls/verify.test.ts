import type { X509Certificate } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { codeOfChainError, subjectAltNames } from './verify.js'

const fake = (subjectAltName: string | undefined) => ({ subjectAltName }) as unknown as X509Certificate

describe('subjectAltNames', () => {
  it("parses Node's rendering, quoted values with commas included", () => {
    expect(
      subjectAltNames(fake('URI:spiffe://example.org/ns/a/sa/b, DNS:localhost, IP Address:127.0.0.1')),
    ).toEqual(['URI:spiffe://example.org/ns/a/sa/b', 'DNS:localhost', 'IP Address:127.0.0.1'])
    // CVE-2021-44532: a value with special characters is a JSON string, so it cannot forge a second SAN.
    expect(subjectAltNames(fake('DNS:"evil, DNS:good", URI:spiffe://x/y'))).toEqual([
      'DNS:evil, DNS:good',
      'URI:spiffe://x/y',
    ])
    expect(subjectAltNames(fake(undefined))).toEqual([])
    expect(subjectAltNames(undefined)).toEqual([])
  })
})

describe('codeOfChainError', () => {
  it('types the OpenSSL verification results', () => {
    expect(codeOfChainError('CERT_HAS_EXPIRED')).toBe('TLS_CERT_EXPIRED')
    expect(codeOfChainError('CERT_NOT_YET_VALID')).toBe('TLS_CERT_NOT_YET_VALID')
    expect(codeOfChainError('UNABLE_TO_VERIFY_LEAF_SIGNATURE')).toBe('TLS_UNKNOWN_CA')
    expect(codeOfChainError('DEPTH_ZERO_SELF_SIGNED_CERT')).toBe('TLS_UNKNOWN_CA')
    expect(codeOfChainError('ERR_SSL_WRONG_VERSION_NUMBER')).toBe('TLS_HANDSHAKE_FAILED')
  })
})

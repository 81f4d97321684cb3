/**
 * Test-time certificates made with the `openssl` command (Debian's openssl 3.0 or newer): two
 * certificate authorities, server and client leaf certificates carrying SPIFFE URI SANs and/or
 * DNS and IP SANs, an expired one, a not-yet-valid one and a wrong-identity one, written to a
 * temporary directory and returned both as PEM text and as file paths.
 *
 * Everything is signed with `openssl ca` (not `openssl x509 -req`) because only `ca` takes an
 * explicit `-startdate` / `-enddate` in openssl 3.0, which the expired and not-yet-valid
 * certificates need without faking the clock. Keys are EC P-256: a key is made in about a
 * millisecond, where RSA 2048 takes tens.
 *
 * When `openssl` is missing the helpers throw (tests fail, never skip) with an install hint.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** The SPIFFE trust domain of the default certificates. */
export const TRUST_DOMAIN = 'example.org'
/** The SPIFFE ID of the default server certificate ({@link TestPki.server}). */
export const SERVER_ID = 'spiffe://example.org/ns/prod/sa/users'
/** The SPIFFE ID of the default client certificate ({@link TestPki.client}). */
export const CLIENT_ID = 'spiffe://example.org/ns/prod/sa/frontend'
/** The SPIFFE ID of the wrong-identity server certificate ({@link TestPki.wrongIdentity}). */
export const WRONG_ID = 'spiffe://example.org/ns/prod/sa/billing'

/** A key and certificate, as PEM text and as the files holding them. */
export interface KeyPair {
  /** The certificate, PEM. */
  readonly cert: string
  /** The private key, PEM (PKCS#8). */
  readonly key: string
  /** Path of the file holding {@link cert}. */
  readonly certPath: string
  /** Path of the file holding {@link key}. */
  readonly keyPath: string
}

/** What a leaf certificate says. */
export interface LeafOptions {
  /** File name stem in the directory; unique per authority. */
  readonly name: string
  /** Subject common name. Default `name`. */
  readonly commonName?: string
  /** URI SANs (SPIFFE IDs). Default none. */
  readonly uris?: readonly string[]
  /** DNS SANs. Default none. */
  readonly dns?: readonly string[]
  /** IP SANs. Default none. */
  readonly ips?: readonly string[]
  /** Validity start. Default one hour ago. */
  readonly notBefore?: Date
  /** Validity end. Default in one day. */
  readonly notAfter?: Date
}

/** A certificate authority that can issue more leaves. */
export interface TestCa extends KeyPair {
  /** Issues a leaf certificate signed by this authority (serverAuth and clientAuth). */
  issue(options: LeafOptions): KeyPair
}

/** The default set of certificates. */
export interface TestPki {
  /** The temporary directory holding every file. */
  readonly dir: string
  /** The trust domain's CA (example.org). */
  readonly ca: TestCa
  /** A second, unrelated CA: its certificates are from an "unknown CA". */
  readonly otherCa: TestCa
  /** Server: URI SAN {@link SERVER_ID}, DNS `localhost`, IP 127.0.0.1; signed by `ca`. */
  readonly server: KeyPair
  /** Client: URI SAN {@link CLIENT_ID}; signed by `ca`. */
  readonly client: KeyPair
  /** Server with DNS `localhost` and IP 127.0.0.1 only (no URI SAN); signed by `ca`. */
  readonly dnsServer: KeyPair
  /** Server like `server` but expired (valid two days ago to one day ago). */
  readonly expired: KeyPair
  /** Server like `server` but valid only from tomorrow. */
  readonly notYetValid: KeyPair
  /** Server with URI SAN {@link WRONG_ID}, DNS `localhost`, IP 127.0.0.1; signed by `ca`. */
  readonly wrongIdentity: KeyPair
  /** Server like `server` but signed by `otherCa`. */
  readonly unknownCa: KeyPair
  /** Server with two URI SANs ({@link SERVER_ID} and {@link WRONG_ID}): refused by gRFC A87. */
  readonly twoUris: KeyPair
  /** Client like `client` but signed by `otherCa`. */
  readonly foreignClient: KeyPair
  /** Removes {@link dir}. */
  cleanup(): void
}

const INSTALL_HINT =
  'openssl is needed to make test certificates: install it (Debian/Ubuntu: ' +
  'apt-get install -y --no-install-recommends openssl; macOS: brew install openssl)'

let checked = false
/** Throws with an install hint when the `openssl` command is missing. */
export function requireOpenssl(): void {
  if (checked) return
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' })
  } catch (err) {
    throw new Error(`${INSTALL_HINT} (${(err as Error).message})`)
  }
  checked = true
}

const openssl = (cwd: string, args: readonly string[]): void => {
  try {
    execFileSync('openssl', args as string[], { cwd, stdio: 'pipe' })
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string }
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString() || e.message}`)
  }
}

/** openssl ca's date format: YYYYMMDDHHMMSSZ (GeneralizedTime). */
const asn1Time = (d: Date): string => `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`

const HOUR = 3_600_000
const DAY = 24 * HOUR

/**
 * Makes a certificate authority in `dir/<name>/` (a self-signed EC P-256 certificate with
 * `basicConstraints=critical,CA:TRUE` and `keyUsage=keyCertSign,cRLSign`), valid from one hour
 * ago for `days` (default 2).
 */
export function makeCa(dir: string, name: string, commonName = `meshlet test CA ${name}`): TestCa {
  requireOpenssl()
  const home = join(dir, name)
  mkdirSync(join(home, 'issued'), { recursive: true })
  const f = (n: string) => join(home, n)
  writeFileSync(f('index.txt'), '')
  writeFileSync(f('serial'), `${Date.now().toString(16).padStart(16, '0')}\n`)
  writeFileSync(
    f('openssl.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      `CN = ${commonName}`,
      '[ca]',
      'default_ca = this_ca',
      '[this_ca]',
      `dir = ${home}`,
      'database = $dir/index.txt',
      'new_certs_dir = $dir/issued',
      'serial = $dir/serial',
      'default_md = sha256',
      'policy = any',
      'unique_subject = no',
      'copy_extensions = none',
      'email_in_dn = no',
      '[any]',
      'commonName = optional',
      '[v3_ca]',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  )
  openssl(home, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca.sec1.key')])
  openssl(home, ['pkcs8', '-topk8', '-nocrypt', '-in', f('ca.sec1.key'), '-out', f('ca.key')])
  openssl(home, ['req', '-new', '-config', f('openssl.cnf'), '-key', f('ca.key'), '-out', f('ca.csr')])
  const now = Date.now()
  openssl(home, [
    'ca',
    '-batch',
    '-notext',
    '-selfsign',
    '-config',
    f('openssl.cnf'),
    '-keyfile',
    f('ca.key'),
    '-extensions',
    'v3_ca',
    '-startdate',
    asn1Time(new Date(now - HOUR)),
    '-enddate',
    asn1Time(new Date(now + 2 * DAY)),
    '-in',
    f('ca.csr'),
    '-out',
    f('ca.pem'),
  ])
  const ca: KeyPair = {
    cert: readFileSync(f('ca.pem'), 'utf8'),
    key: readFileSync(f('ca.key'), 'utf8'),
    certPath: f('ca.pem'),
    keyPath: f('ca.key'),
  }
  const issue = (options: LeafOptions): KeyPair => {
    const n = options.name
    const sans = [
      ...(options.uris ?? []).map((u) => `URI:${u}`),
      ...(options.dns ?? []).map((d) => `DNS:${d}`),
      ...(options.ips ?? []).map((i) => `IP:${i}`),
    ]
    const ext = [
      '[leaf]',
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature',
      'extendedKeyUsage = serverAuth,clientAuth',
      'authorityKeyIdentifier = keyid',
      ...(sans.length > 0 ? [`subjectAltName = ${sans.join(',')}`] : []),
      '',
    ].join('\n')
    writeFileSync(f(`${n}.ext`), ext)
    writeFileSync(
      f(`${n}.req.cnf`),
      `[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = ${options.commonName ?? n}\n`,
    )
    openssl(home, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f(`${n}.sec1.key`)])
    openssl(home, ['pkcs8', '-topk8', '-nocrypt', '-in', f(`${n}.sec1.key`), '-out', f(`${n}.key`)])
    openssl(home, ['req', '-new', '-config', f(`${n}.req.cnf`), '-key', f(`${n}.key`), '-out', f(`${n}.csr`)])
    const t = Date.now()
    openssl(home, [
      'ca',
      '-batch',
      '-notext',
      '-config',
      f('openssl.cnf'),
      '-cert',
      f('ca.pem'),
      '-keyfile',
      f('ca.key'),
      '-extfile',
      f(`${n}.ext`),
      '-extensions',
      'leaf',
      '-startdate',
      asn1Time(options.notBefore ?? new Date(t - HOUR)),
      '-enddate',
      asn1Time(options.notAfter ?? new Date(t + DAY)),
      '-in',
      f(`${n}.csr`),
      '-out',
      f(`${n}.pem`),
    ])
    return {
      cert: readFileSync(f(`${n}.pem`), 'utf8'),
      key: readFileSync(f(`${n}.key`), 'utf8'),
      certPath: f(`${n}.pem`),
      keyPath: f(`${n}.key`),
    }
  }
  return { ...ca, issue }
}

/**
 * Makes the default set of certificates ({@link TestPki}) in a new temporary directory. About 40
 * openssl runs: a few hundred milliseconds; make it once per test file (beforeAll) and call
 * {@link TestPki.cleanup} after.
 */
export function makePki(): TestPki {
  requireOpenssl()
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-pki-'))
  try {
    const ca = makeCa(dir, 'ca', 'example.org test CA')
    const otherCa = makeCa(dir, 'other-ca', 'unknown test CA')
    const local = { dns: ['localhost'], ips: ['127.0.0.1'] }
    const now = Date.now()
    return {
      dir,
      ca,
      otherCa,
      server: ca.issue({ name: 'server', uris: [SERVER_ID], ...local }),
      client: ca.issue({ name: 'client', uris: [CLIENT_ID] }),
      dnsServer: ca.issue({ name: 'dns-server', ...local }),
      expired: ca.issue({
        name: 'expired',
        uris: [SERVER_ID],
        ...local,
        notBefore: new Date(now - 2 * DAY),
        notAfter: new Date(now - DAY),
      }),
      notYetValid: ca.issue({
        name: 'not-yet-valid',
        uris: [SERVER_ID],
        ...local,
        notBefore: new Date(now + DAY),
        notAfter: new Date(now + 2 * DAY),
      }),
      wrongIdentity: ca.issue({ name: 'wrong-identity', uris: [WRONG_ID], ...local }),
      unknownCa: otherCa.issue({ name: 'server', uris: [SERVER_ID], ...local }),
      twoUris: ca.issue({ name: 'two-uris', uris: [SERVER_ID, WRONG_ID], ...local }),
      foreignClient: otherCa.issue({ name: 'client', uris: [CLIENT_ID] }),
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

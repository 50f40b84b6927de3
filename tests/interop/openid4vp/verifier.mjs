// An independent OpenID4VP verifier (@openid4vc/openid4vp's Openid4vpVerifier) asking imi's wallet.
//
// Reads one JSON object on stdin:
//   {"did": "did:imi:…", "kid": "did:imi:…#…", "private_jwk": {Ed25519 JWK with d},
//    "dcql_query": {…}, "timeout_s": 60}
// then serves on a free loopback port: GET /request (the signed request object, JAR) and
// POST /response (direct_post). Prints two JSON lines on stdout:
//   1. {"uri": "openid4vp://…", "request_uri", "response_uri"} once it listens;
//   2. after the first response (or the timeout): what the package parsed from it,
//      {"state", "nonce", "client_id", "query_ids", "presentations", "request_fetches"},
//      or {"error": "…", "message": "…"} (exit code 1).
// Bounded: one response, then it exits; it exits anyway after timeout_s.
import crypto from 'node:crypto'
import http from 'node:http'
import { setGlobalConfig } from '@openid4vc/oauth2'
import { Openid4vpVerifier } from '@openid4vc/openid4vp'

const STDIN_BYTES_MAX = 100_000
const BODY_BYTES_MAX = 1_000_000
const TIMEOUT_S_MAX = 300
const REQUEST_LIFETIME_S = 300
// OpenID4VP 1.0 §5.8: a request object for a wallet found by static discovery.
const STATIC_DISCOVERY_AUD = 'https://self-issued.me/v2'

async function readInput() {
  const chunks = []
  let size = 0
  for await (const chunk of process.stdin) {
    size += chunk.length
    if (size > STDIN_BYTES_MAX) throw new Error('input too large')
    chunks.push(chunk)
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

function signEd25519(privateJwk) {
  const key = crypto.createPrivateKey({ key: privateJwk, format: 'jwk' })
  const { d: _secret, ...publicJwk } = privateJwk
  return (signer, jwt) => {
    if (signer.method !== 'did' || signer.alg !== 'EdDSA') throw new Error(`cannot sign for ${signer.method}`)
    const encode = (part) => Buffer.from(JSON.stringify(part)).toString('base64url')
    const input = `${encode(jwt.header)}.${encode(jwt.payload)}`
    const signature = crypto.sign(null, Buffer.from(input, 'ascii'), key).toString('base64url')
    return { jwt: `${input}.${signature}`, signerJwk: publicJwk }
  }
}

function callbacks(input) {
  const unsupported = (name) => () => { throw new Error(`${name} is not used in this test`) }
  return {
    signJwt: signEd25519(input.private_jwk),
    hash: (data, alg) => new Uint8Array(crypto.createHash(alg.replace('-', '').toLowerCase()).update(data).digest()),
    verifyJwt: unsupported('verifyJwt'),
    encryptJwe: unsupported('encryptJwe'),
    decryptJwe: unsupported('decryptJwe'),
    fetch: unsupported('fetch'),
  }
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server.address().port))
  })
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    req.on('data', (chunk) => {
      size += chunk.length
      if (size > BODY_BYTES_MAX) { reject(new Error('body too large')); req.destroy() } else chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

const print = (value) => process.stdout.write(JSON.stringify(value) + '\n')
const failure = (err) => ({
  error: err?.errorResponse?.error ?? err?.constructor?.name ?? 'Error',
  message: String(err?.errorResponse?.error_description ?? err?.message ?? err),
})

async function main() {
  const input = await readInput()
  const timeoutS = Math.min(Number(input.timeout_s) || 60, TIMEOUT_S_MAX)
  setGlobalConfig({ allowInsecureUrls: true }) // http on loopback, in the tests only
  const verifier = new Openid4vpVerifier({ callbacks: callbacks(input) })
  let requestObject = null
  let requestPayload = null
  let fetches = 0
  let settle
  const done = new Promise((resolve) => { settle = resolve })

  const server = http.createServer(async (req, res) => {
    const path = new URL(req.url, 'http://127.0.0.1').pathname
    if (req.method === 'GET' && path === '/request') {
      fetches += 1
      res.writeHead(200, { 'Content-Type': 'application/oauth-authz-req+jwt' }).end(requestObject)
      return
    }
    if (req.method !== 'POST' || path !== '/response') {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":"not_found"}')
      return
    }
    try {
      const form = Object.fromEntries(new URLSearchParams(await readBody(req)))
      const parsed = await verifier.parseOpenid4vpAuthorizationResponse({
        authorizationResponse: form,
        authorizationRequestPayload: requestPayload,
      })
      if (parsed.type !== 'dcql') throw new Error(`expected a DCQL response, got ${parsed.type}`)
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}')
      settle({
        state: parsed.authorizationResponsePayload.state ?? null,
        nonce: parsed.expectedNonce,
        client_id: requestPayload.client_id,
        query_ids: Object.keys(parsed.dcql.presentations),
        presentations: parsed.dcql.presentations,
        request_fetches: fetches,
      })
    } catch (err) {
      res.writeHead(400, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ error: 'invalid_request', error_description: failure(err).message }))
      settle(failure(err))
    }
  })
  const port = await listen(server)
  const base = `http://127.0.0.1:${port}`
  const random = () => crypto.randomBytes(16).toString('base64url')
  const created = await verifier.createOpenId4vpAuthorizationRequest({
    authorizationRequestPayload: {
      response_type: 'vp_token',
      client_id: `decentralized_identifier:${input.did}`,
      response_mode: 'direct_post',
      response_uri: `${base}/response`,
      nonce: random(),
      state: random(),
      dcql_query: input.dcql_query,
      client_metadata: {
        vp_formats_supported: { 'dc+sd-jwt': { 'sd-jwt_alg_values': ['EdDSA', 'ES256'], 'kb-jwt_alg_values': ['EdDSA', 'ES256'] } },
      },
    },
    jar: {
      requestUri: `${base}/request`,
      jwtSigner: { method: 'did', didUrl: input.kid, alg: 'EdDSA' },
      expiresInSeconds: REQUEST_LIFETIME_S,
      // the package would put the request_uri here; 1.0 §5.8 asks for this value
      additionalJwtPayload: { aud: STATIC_DISCOVERY_AUD },
    },
  })
  requestObject = created.jar.authorizationRequestJwt
  requestPayload = created.authorizationRequestPayload
  print({ uri: created.authorizationRequest, request_uri: `${base}/request`, response_uri: `${base}/response` })

  const timer = setTimeout(() => settle({ error: 'timeout', message: `no response within ${timeoutS} s` }),
    timeoutS * 1000)
  const result = await done
  clearTimeout(timer)
  server.close()
  server.closeAllConnections()
  return result
}

main().then(
  (out) => { print(out); if (out.error) process.exitCode = 1 },
  (err) => { print(failure(err)); process.exitCode = 1 },
)

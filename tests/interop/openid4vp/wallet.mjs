// An independent OpenID4VP wallet (@openid4vc/openid4vp's Openid4vpClient) facing imi's verifier.
//
// Reads one JSON object on stdin and prints one JSON object on stdout:
//   {"uri": "openid4vp://…", "jwk": {public JWK of the service}, "kid": "did:imi:…#…"}
//     -> resolves the request (fetches request_uri, checks the request object's signature
//        with that key) and prints {"client_id", "nonce", "state", "response_uri",
//        "response_mode", "dcql_query", "version", "signer"}
//   the same plus "vp_token": {query id: [presentation]}
//     -> resolves again, builds the authorization response with the package and submits it
//        by direct_post; prints {"status", "body"} of the verifier's answer.
// The package cannot resolve did:imi: the verifyJwt callback maps the signer's DID URL to
// the key given by the test and checks the JWS itself (Ed25519 with node:crypto).
// On any failure: {"error": "…", "message": "…"} and exit code 1.
import crypto from 'node:crypto'
import { setGlobalConfig } from '@openid4vc/oauth2'
import { Openid4vpClient } from '@openid4vc/openid4vp'

const STDIN_BYTES_MAX = 1_000_000
const FETCH_TIMEOUT_MS = 15_000

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

const b64url = (text) => Buffer.from(text, 'base64url')

function verifyEd25519(compact, jwk) {
  const [header, payload, signature] = compact.split('.')
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' })
  return crypto.verify(null, Buffer.from(`${header}.${payload}`, 'ascii'), key, b64url(signature))
}

function callbacks(input) {
  const unsupported = (name) => () => { throw new Error(`${name} is not used in this test`) }
  return {
    fetch: (url, init) => fetch(url, { ...init, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) }),
    hash: (data, alg) => new Uint8Array(crypto.createHash(alg.replace('-', '').toLowerCase()).update(data).digest()),
    verifyJwt: async (signer, jwt) => {
      // Only the DID method, only the service's key, only EdDSA: anything else is refused.
      const trusted = signer.method === 'did' && signer.didUrl === input.kid && jwt.header.alg === 'EdDSA'
      const verified = trusted && verifyEd25519(jwt.compact, input.jwk)
      return verified ? { verified: true, signerJwk: input.jwk } : { verified: false }
    },
    signJwt: unsupported('signJwt'),
    encryptJwe: unsupported('encryptJwe'),
    decryptJwe: unsupported('decryptJwe'),
  }
}

async function main() {
  // The tests serve over http on loopback; the package accepts only https unless told.
  setGlobalConfig({ allowInsecureUrls: true })
  const input = await readInput()
  const client = new Openid4vpClient({ callbacks: callbacks(input) })
  const parsed = client.parseOpenid4vpAuthorizationRequest({ authorizationRequest: input.uri })
  const resolved = await client.resolveOpenId4vpAuthorizationRequest({
    authorizationRequestPayload: parsed.params,
  })
  const request = resolved.authorizationRequestPayload
  if (input.vp_token === undefined) {
    return {
      client_id: request.client_id,
      nonce: request.nonce,
      state: request.state,
      response_uri: request.response_uri,
      response_mode: request.response_mode,
      dcql_query: resolved.dcql?.query ?? null,
      version: resolved.version,
      signer: resolved.jar?.signer?.didUrl ?? null,
      client_prefix: resolved.client.prefix,
    }
  }
  const response = await client.createOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: request,
    authorizationResponsePayload: { vp_token: input.vp_token },
  })
  const submitted = await client.submitOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: request,
    authorizationResponsePayload: response.authorizationResponsePayload,
  })
  const text = await submitted.response.text()
  let body
  try { body = JSON.parse(text) } catch { body = text }
  return {
    status: submitted.response.status,
    body,
    sent: response.authorizationResponsePayload,
  }
}

main().then(
  (out) => { process.stdout.write(JSON.stringify(out) + '\n') },
  (err) => {
    process.stdout.write(JSON.stringify({
      error: err?.errorResponse?.error ?? err?.constructor?.name ?? 'Error',
      message: String(err?.errorResponse?.error_description ?? err?.message ?? err),
      cause: err?.cause ? String(err.cause?.message ?? err.cause) : null,
    }) + '\n')
    process.exitCode = 1
  },
)

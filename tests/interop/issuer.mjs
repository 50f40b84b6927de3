// A minimal OpenID4VCI issuer built with @openid4vc/openid4vci (Openid4vciIssuer) and
// @openid4vc/oauth2 (Oauth2AuthorizationServer): pre-authorized code with tx_code, nonce,
// credential endpoint; it signs SD-JWT VCs with the accredited agency's key it is given.
// Usage: node issuer.mjs CONFIG.json — CONFIG: {port, credential_issuer, did, kid, issuer_jwk
// (private), vct, claims, status: {idx, uri}, tx_code}. Prints {"offer_uri": ...} once listening.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { Oauth2AuthorizationServer, preAuthorizedCodeGrantIdentifier } from '@openid4vc/oauth2'
import { Openid4vciIssuer, Openid4vciVersion } from '@openid4vc/openid4vci'
import { setGlobalConfig } from '@openid4vc/utils'

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'))
setGlobalConfig({ allowInsecureUrls: true }) // loopback http in the test
const b64url = (data) => Buffer.from(data).toString('base64url')
const issuerKey = createPrivateKey({ key: config.issuer_jwk, format: 'jwk' })
const issuerAlg = config.issuer_jwk.kty === 'OKP' ? 'EdDSA' : 'ES256'
const tokenKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' }) // signs access tokens
const tokenJwk = (({ kty, crv, x, y }) => ({ kty, crv, x, y }))(tokenKeys.publicKey.export({ format: 'jwk' }))

function signWith(key, alg, input) {
  return alg === 'EdDSA' ? sign(null, Buffer.from(input), key)
    : sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
}

function signJwt(key, alg, header, payload) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`
  return `${input}.${b64url(signWith(key, alg, input))}`
}

const callbacks = {
  hash: (data, alg) => createHash(alg.replace('-', '').toLowerCase()).update(data).digest(),
  generateRandom: (length) => randomBytes(length),
  signJwt: async (signer, { header, payload }) => ({
    jwt: signJwt(tokenKeys.privateKey, 'ES256', header, payload), signerJwk: signer.publicJwk }),
  verifyJwt: async (signer, { compact }) => {
    const jwk = signer.publicJwk
    const [h, p, s] = compact.split('.')
    const key = createPublicKey({ key: jwk, format: 'jwk' })
    const data = Buffer.from(`${h}.${p}`)
    const sig = Buffer.from(s, 'base64url')
    const ok = signer.alg === 'EdDSA' ? verify(null, data, key, sig)
      : verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig)
    return ok ? { verified: true, signerJwk: jwk } : { verified: false }
  },
  clientAuthentication: () => {},
}

const issuer = new Openid4vciIssuer({ callbacks })
const authServer = new Oauth2AuthorizationServer({ callbacks })
const base = config.credential_issuer
const credentialIssuer = issuer.createCredentialIssuerMetadata({
  credential_issuer: base,
  credential_endpoint: `${base}/credential`,
  nonce_endpoint: `${base}/nonce`,
  credential_configurations_supported: {
    [config.vct]: {
      format: 'dc+sd-jwt', vct: config.vct,
      cryptographic_binding_methods_supported: ['jwk'],
      credential_signing_alg_values_supported: [issuerAlg],
      proof_types_supported: { jwt: { proof_signing_alg_values_supported: ['ES256', 'EdDSA'] } },
    },
  },
})
const authorizationServer = authServer.createAuthorizationServerMetadata({
  issuer: base, token_endpoint: `${base}/token`, 'pre-authorized_grant_anonymous_access_supported': true,
})
const issuerMetadata = {
  originalDraftVersion: Openid4vciVersion.V1, credentialIssuer, authorizationServers: [authorizationServer],
  knownCredentialConfigurations: issuer.getKnownCredentialConfigurationsSupported(credentialIssuer),
}
const preAuthorizedCode = b64url(randomBytes(24))
const accessTokens = new Set()
const nonces = new Map() // c_nonce -> expiry (ms)

function credentialFor(holderJwk) {
  const now = Math.floor(Date.now() / 1000)
  const disclosures = Object.entries(config.claims).map(([name, value]) =>
    b64url(JSON.stringify([b64url(randomBytes(16)), name, value])))
  const digests = disclosures.map((d) => b64url(createHash('sha256').update(d).digest())).sort()
  const payload = {
    iss: config.did, vct: config.vct, iat: now, exp: now + 3600, cnf: { jwk: holderJwk },
    status: { status_list: config.status }, _sd: digests, _sd_alg: 'sha-256',
  }
  const jwt = signJwt(issuerKey, issuerAlg, { alg: issuerAlg, typ: 'dc+sd-jwt', kid: config.kid }, payload)
  return `${jwt}~${disclosures.join('~')}~`
}

async function body(req) {
  const chunks = []
  for await (const chunk of req) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

function send(res, status, json) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(JSON.stringify(json))
}

async function handle(req, res) {
  const url = new URL(req.url, base)
  if (req.method === 'GET' && url.pathname === '/.well-known/openid-credential-issuer') {
    return send(res, 200, { ...credentialIssuer, imi_issuer_did: config.did })
  }
  if (req.method === 'GET' && url.pathname === '/.well-known/oauth-authorization-server') {
    return send(res, 200, authorizationServer)
  }
  if (req.method === 'POST' && url.pathname === '/token') {
    const form = Object.fromEntries(new URLSearchParams(await body(req)))
    const request = { headers: new Headers(req.headers), method: 'POST', url: `${base}/token` }
    const parsed = authServer.parseAccessTokenRequest({ request, accessTokenRequest: form })
    await authServer.verifyPreAuthorizedCodeAccessTokenRequest({
      authorizationServerMetadata: authorizationServer, grant: parsed.grant,
      accessTokenRequest: parsed.accessTokenRequest, request,
      expectedPreAuthorizedCode: preAuthorizedCode, expectedTxCode: config.tx_code,
    })
    const answer = await authServer.createAccessTokenResponse({
      authorizationServer: base, audience: base, expiresInSeconds: 300, subject: 'holder',
      signer: { method: 'jwk', alg: 'ES256', publicJwk: tokenJwk },
    })
    accessTokens.add(answer.access_token)
    return send(res, 200, answer)
  }
  if (req.method === 'POST' && url.pathname === '/nonce') {
    const cNonce = b64url(randomBytes(16))
    nonces.set(cNonce, Date.now() + 300_000)
    return send(res, 200, issuer.createNonceResponse({ cNonce }))
  }
  if (req.method === 'POST' && url.pathname === '/credential') {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '')
    if (!accessTokens.has(token)) return send(res, 401, { error: 'invalid_token' })
    const parsed = issuer.parseCredentialRequest({ issuerMetadata, credentialRequest: JSON.parse(await body(req)) })
    const credentials = []
    for (const jwt of parsed.proofs?.jwt ?? []) {
      const nonce = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url')).nonce
      if (!nonces.has(nonce)) return send(res, 400, { error: 'invalid_nonce' })
      const verified = await issuer.verifyCredentialRequestJwtProof({
        issuerMetadata, jwt, expectedNonce: nonce, nonceExpiresAt: new Date(nonces.get(nonce)),
      })
      credentials.push({ credential: credentialFor(verified.signer.publicJwk) })
    }
    if (credentials.length === 0) return send(res, 400, { error: 'invalid_proof' })
    accessTokens.delete(token)
    return send(res, 200, issuer.createCredentialResponse({ credentialRequest: parsed, credentials }))
  }
  return send(res, 404, { error: 'not_found' })
}

const server = createServer((req, res) => {
  handle(req, res).catch((error) => {
    send(res, 400, { error: error?.errorResponse?.error ?? 'invalid_request', error_description: String(error?.message ?? error) })
  })
})
server.listen(config.port, '127.0.0.1', async () => {
  const { credentialOffer } = await issuer.createCredentialOffer({
    issuerMetadata, credentialConfigurationIds: [config.vct],
    grants: { [preAuthorizedCodeGrantIdentifier]: { 'pre-authorized_code': preAuthorizedCode,
                                                    tx_code: { input_mode: 'numeric', length: config.tx_code.length } } },
  })
  console.log(JSON.stringify({ offer_uri: credentialOffer }))
})

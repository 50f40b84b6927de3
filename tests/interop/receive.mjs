// An independent OpenID4VCI wallet: @openid4vc/openid4vci (pinned in package.json) receives a
// credential from an issuer through a pre-authorized code with tx_code, holder key ES256 by jwk.
// Usage: node receive.mjs OFFER_URI TX_CODE  -> prints {"credentials": [...], "jwk": {...},
// "credential_issuer": "...", "configuration_id": "..."} on stdout; exit 1 with a message otherwise.
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import { clientAuthenticationAnonymous } from '@openid4vc/oauth2'
import { Openid4vciClient } from '@openid4vc/openid4vci'
import { setGlobalConfig } from '@openid4vc/utils'

const [offerUri, txCode] = process.argv.slice(2)
setGlobalConfig({ allowInsecureUrls: true }) // the test issuer listens on loopback http

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const { kty, crv, x, y } = publicKey.export({ format: 'jwk' })
const publicJwk = { kty, crv, x, y }
const b64url = (data) => Buffer.from(data).toString('base64url')

const callbacks = {
  fetch,
  hash: (data, alg) => createHash(alg.replace('-', '').toLowerCase()).update(data).digest(),
  generateRandom: (length) => randomBytes(length),
  clientAuthentication: clientAuthenticationAnonymous(),
  signJwt: async (signer, { header, payload }) => {
    if (signer.method !== 'jwk' || signer.alg !== 'ES256') throw new Error(`unexpected signer ${signer.method}`)
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`
    const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
    return { jwt: `${input}.${b64url(signature)}`, signerJwk: signer.publicJwk }
  },
}

try {
  const client = new Openid4vciClient({ callbacks })
  const offer = await client.resolveCredentialOffer(offerUri)
  const metadata = await client.resolveIssuerMetadata(offer.credential_issuer)
  const { accessTokenResponse } = await client.retrievePreAuthorizedCodeAccessTokenFromOffer({
    credentialOffer: offer, issuerMetadata: metadata, txCode,
  })
  const configurationId = offer.credential_configuration_ids[0]
  const { c_nonce: nonce } = await client.requestNonce({ issuerMetadata: metadata })
  const { jwt } = await client.createCredentialRequestJwtProof({
    issuerMetadata: metadata, credentialConfigurationId: configurationId, nonce,
    signer: { method: 'jwk', alg: 'ES256', publicJwk },
  })
  const response = await client.retrieveCredentials({
    issuerMetadata: metadata, accessToken: accessTokenResponse.access_token,
    credentialConfigurationId: configurationId, proofs: { jwt: [jwt] },
  })
  const credentials = response.credentialResponse.credentials.map((c) => c.credential)
  console.log(JSON.stringify({ credentials, jwk: publicJwk, credential_issuer: offer.credential_issuer,
                               configuration_id: configurationId }))
} catch (error) {
  console.error(`interop wallet failed: ${error?.message ?? error}`)
  if (error?.response) console.error(JSON.stringify(error.response).slice(0, 2000))
  if (error?.errorResponse) console.error(JSON.stringify(error.errorResponse).slice(0, 2000))
  process.exit(1)
}

// A js-libp2p gossipsub peer for poai (docs/protocol.md, "Interoperability").
//
// It joins a poai network over TCP with Noise and yamux, subscribes to every
// poai topic and relays what it hears as any gossipsub peer does. It holds no
// poai logic: it only checks, from the specification and standard libraries,
// every message it receives, and prints one JSON line per message on stdout:
//
//   - id_ok: gossipsub's message ID, computed by this peer's msgIdFn (§4.3),
//     equals a second computation from the envelope re-encoded with
//     protobufjs and hashed with node:crypto;
//   - sig_ok: the envelope signature (§4.1) verifies with node:crypto's
//     Ed25519 against the key embedded in the `from` peer ID;
//   - decoded_ok: the payload decodes with protobufjs as its topic's message
//     type, loaded at run time from challenge/pb/poai.proto;
//   - canonical_ok: the payload is in canonical form (§3.1);
//   - author_ok: the payload's author field equals `from` (§4.1), null for
//     commitments, which any peer may deliver;
//   - commitment_sig_ok: a commitment's own signature (§4.2), else null.
//
// After --duration it prints a summary line ({"event":"summary",...}) and
// exits. Usage:
//
//   node peer.mjs --duration 60s [--proto ../../challenge/pb/poai.proto] MULTIADDR...
//   node peer.mjs --vectors ../../testdata/protocol/vectors.json
//
// The second form checks this file's message IDs, signing bytes, signature
// checks and canonical-form checks against the Go implementation's test
// vectors and exits non-zero on any difference.

import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { base58btc } from 'multiformats/bases/base58'
import * as Digest from 'multiformats/hashes/digest'
import protobuf from 'protobufjs'

// Node.js 20 lacks Promise.withResolvers (22+), which libp2p 2.x's queues call.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const here = dirname(fileURLToPath(import.meta.url))

// Topics (docs/protocol.md §2) and the message type each carries.
const TOPICS = {
  '/poai/1/claims': 'DeviceClaim',
  '/poai/1/challenges': 'Challenge',
  '/poai/1/commitments': 'Commitment',
  '/poai/1/reveals': 'Reveal',
  '/poai/1/openings': 'Opening',
  '/poai/1/attestations': 'Attestation',
  '/poai/1/requests': 'ChallengeRequest'
}

const SIGN_PREFIX = Buffer.from('libp2p-pubsub:')
const COMMITMENT_PREFIX = Buffer.from('poai/1/commitment')
const CODEC_RAW = 0x55
const SHA2_256 = 0x12

// The libp2p pubsub envelope and public key, for the second, independent
// computation (the libp2p pubsub and peer ID specifications).
const wire = protobuf.parse(`
syntax = "proto2";
message Message {
  optional bytes from = 1;
  optional bytes data = 2;
  optional bytes seqno = 3;
  optional string topic = 4;
  optional bytes signature = 5;
  optional bytes key = 6;
}
enum KeyType { RSA = 0; Ed25519 = 1; Secp256k1 = 2; ECDSA = 3; }
message PublicKey {
  required KeyType Type = 1;
  required bytes Data = 2;
}
`).root
const EnvelopeType = wire.lookupType('Message')
const PublicKeyType = wire.lookupType('PublicKey')

// --- message ID, path 1: what gossipsub uses (msgIdFn) ---------------------

function varint (n) {
  const out = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return Buffer.from(out)
}

function lengthDelimited (field, bytes) {
  return Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes])
}

function seqnoBytes (seq) {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(seq)
  return b
}

// signedBytesByHand is "libp2p-pubsub:" ‖ Message{from=1, data=2, seqno=3,
// topic=4}, written field by field (§4.3).
function signedBytesByHand (from, data, seqno, topic) {
  return Buffer.concat([SIGN_PREFIX, lengthDelimited(1, from), lengthDelimited(2, data),
    lengthDelimited(3, seqno), lengthDelimited(4, Buffer.from(topic, 'utf8'))])
}

// poaiMsgId is poai's message ID: CIDv1(raw, sha2-256(signed bytes)),
// binary form.
function poaiMsgId (msg) {
  if (msg.type !== 'signed') throw new Error('unsigned message under StrictSign')
  const signed = signedBytesByHand(msg.from.toMultihash().bytes, msg.data, seqnoBytes(msg.sequenceNumber), msg.topic)
  const digest = createHash('sha256').update(signed).digest()
  return CID.createV1(CODEC_RAW, Digest.create(SHA2_256, digest)).bytes
}

// --- message ID and signature, path 2: protobufjs and node:crypto ----------

function signedBytesProtobufjs (env) {
  const u = EnvelopeType.create({ from: env.from, data: env.data, seqno: env.seqno, topic: env.topic })
  return Buffer.concat([SIGN_PREFIX, EnvelopeType.encode(u).finish()])
}

function msgIdFromSigned (signed) {
  const digest = createHash('sha256').update(signed).digest()
  // 01 55 12 20 ‖ digest, by hand as well.
  return Buffer.concat([Buffer.from([0x01, CODEC_RAW, SHA2_256, 0x20]), digest])
}

// ed25519KeyOf extracts the Ed25519 key a peer ID embeds (identity
// multihash 00 <len> of the protobuf PublicKey), or throws.
function ed25519KeyOf (id) {
  const b = Buffer.from(id)
  if (b.length < 2 || b[0] !== 0x00 || b[1] !== b.length - 2) throw new Error('peer ID does not embed its key')
  const pk = PublicKeyType.decode(b.subarray(2))
  if (pk.Type !== 1 || pk.Data.length !== 32) throw new Error(`key type ${pk.Type}, want Ed25519`)
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pk.Data).toString('base64url') }, format: 'jwk' })
}

function ed25519Verify (id, bytes, sig) {
  try {
    return cryptoVerify(null, bytes, ed25519KeyOf(id), Buffer.from(sig))
  } catch {
    return false
  }
}

// --- canonical form (§3.1), straight from the wire ------------------------

const VARINT_TYPES = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'bool'])

function wireTypeOf (field) {
  field.resolve()
  if (field.resolvedType instanceof protobuf.Type) return 2
  if (field.repeated && field.type !== 'string' && field.type !== 'bytes') return 2 // packed (§3.1)
  if (field.resolvedType instanceof protobuf.Enum) return 0
  if (VARINT_TYPES.has(field.type)) return 0
  if (field.type === 'double' || field.type === 'fixed64' || field.type === 'sfixed64') return 1
  if (field.type === 'float' || field.type === 'fixed32' || field.type === 'sfixed32') return 5
  return 2 // string, bytes
}

// readVarint returns [value as BigInt, next offset], or throws on a
// truncated, overlong or non-minimal varint.
function readVarint (b, i) {
  let v = 0n; let shift = 0n; const start = i
  for (;;) {
    if (i >= b.length || i - start >= 10) throw new Error('bad varint')
    const c = b[i++]
    v |= BigInt(c & 0x7f) << shift
    shift += 7n
    if ((c & 0x80) === 0) {
      if (c === 0 && i - start > 1) throw new Error('non-minimal varint')
      return [v, i]
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

// canonicalError returns why bytes b are not the canonical encoding of type,
// or null.
function canonicalError (type, b) {
  let i = 0; let last = 0
  while (i < b.length) {
    let tag
    ;[tag, i] = readVarint(b, i)
    const id = Number(tag >> 3n); const wt = Number(tag & 7n)
    const field = type.fieldsById[id]
    if (field == null) return `${type.name}: unknown field ${id}`
    if (wt !== wireTypeOf(field)) return `${type.name}.${field.name}: wire type ${wt}`
    if (id < last || (id === last && !field.repeated)) return `${type.name}.${field.name}: out of order or repeated`
    last = id
    if (wt === 0) {
      let v
      ;[v, i] = readVarint(b, i)
      if (v === 0n && !field.repeated) return `${type.name}.${field.name}: explicit zero`
    } else if (wt === 1 || wt === 5) {
      const n = wt === 1 ? 8 : 4
      if (i + n > b.length) return `${type.name}.${field.name}: truncated`
      // +0.0 is the default; -0.0 (sign bit set) is written.
      if (!field.repeated && b.subarray(i, i + n).every(x => x === 0)) return `${type.name}.${field.name}: explicit zero`
      i += n
    } else {
      let n
      ;[n, i] = readVarint(b, i)
      n = Number(n)
      if (i + n > b.length) return `${type.name}.${field.name}: truncated`
      const v = b.subarray(i, i + n)
      i += n
      if (n === 0 && !field.repeated) return `${type.name}.${field.name}: explicit empty`
      if (field.resolvedType instanceof protobuf.Type) {
        const e = canonicalError(field.resolvedType, v)
        if (e != null) return e
      } else if (field.repeated && field.type !== 'string' && field.type !== 'bytes') {
        // A packed run of varints: each minimal, none left truncated.
        if (!VARINT_TYPES.has(field.type)) return `${type.name}.${field.name}: packed ${field.type} unsupported`
        let j = 0
        try {
          while (j < v.length) [, j] = readVarint(v, j)
        } catch (err) { return `${type.name}.${field.name}: ${err.message}` }
      } else if (field.type === 'string') {
        try { utf8.decode(v) } catch { return `${type.name}.${field.name}: invalid UTF-8` }
      }
    }
  }
  return null
}

// --- one message ------------------------------------------------------------

function hex (b) { return Buffer.from(b).toString('hex') }

function baseTopic (topic) {
  // Sharded names: <base>/<shard>-of-<S> (§2).
  return topic.replace(/\/\d+-of-\d+$/, '')
}

function sameBytes (a, b) { return a != null && b != null && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0 }

// authorOf returns the payload's author field (§4.1), or undefined where
// the payload names none that must equal the signer (commitments).
function authorOf (kind, m) {
  switch (kind) {
    case 'DeviceClaim': return m.peerId
    case 'Challenge': return m.challenger
    case 'Opening': return m.prover
    case 'ChallengeRequest': return m.requester
    case 'Attestation': return m.verifier
    case 'Reveal': return m.share != null ? m.share.verifier : m.challenger
    default: return undefined
  }
}

// check runs every check on one envelope {from, data, seqno, topic,
// signature} and returns the report line (without id_ok when gossipsubId
// is undefined).
function check (root, env, gossipsubId) {
  const signed = signedBytesProtobufjs(env)
  const id = msgIdFromSigned(signed)
  const kind = TOPICS[baseTopic(env.topic)]
  const line = {
    topic: env.topic,
    type: kind ?? null,
    from: hex(env.from),
    seqno: hex(env.seqno),
    size: env.data.length,
    id: CID.decode(id).toString(),
    id_ok: gossipsubId === undefined ? undefined : sameBytes(gossipsubId, id),
    sig_ok: ed25519Verify(env.from, signed, env.signature),
    decoded_ok: false,
    canonical_ok: false,
    author_ok: null,
    commitment_sig_ok: null
  }
  if (kind == null) {
    line.error = 'not a poai topic'
    return { line, signed, id }
  }
  const T = root.lookupType(kind)
  let m
  try {
    m = T.decode(env.data)
    const e = T.verify(m)
    if (e != null) throw new Error(e)
    line.decoded_ok = true
  } catch (e) {
    line.error = `decode: ${e.message}`
    return { line, signed, id }
  }
  try {
    const e = canonicalError(T, env.data)
    line.canonical_ok = e == null
    if (e != null) line.error = `canonical: ${e}`
  } catch (e) {
    line.error = `canonical: ${e.message}`
  }
  const author = authorOf(kind, m)
  if (author !== undefined) line.author_ok = sameBytes(author, env.from)
  if (kind === 'Commitment') {
    const u = T.decode(env.data)
    delete u.signature
    const bytes = Buffer.concat([COMMITMENT_PREFIX, T.encode(u).finish()])
    line.commitment_sig_ok = ed25519Verify(m.prover, bytes, m.signature)
  }
  return { line, signed, id }
}

// --- modes ------------------------------------------------------------------

function parseArgs (argv) {
  const a = { duration: 60_000, proto: resolve(here, '../../challenge/pb/poai.proto'), vectors: null, maxHex: 2048, forwardToAuthor: false, addrs: [] }
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]
    if (v === '--duration') a.duration = parseDuration(argv[++i])
    else if (v === '--proto') a.proto = argv[++i]
    else if (v === '--vectors') a.vectors = argv[++i]
    else if (v === '--max-hex') a.maxHex = Number(argv[++i])
    else if (v === '--forward-to-author') a.forwardToAuthor = true
    else if (v.startsWith('--')) throw new Error(`unknown flag ${v}`)
    else a.addrs.push(v)
  }
  return a
}

function parseDuration (s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s ?? '')
  if (m == null) throw new Error(`bad duration ${s}`)
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']
}

function out (obj) { process.stdout.write(JSON.stringify(obj) + '\n') }
function log (...args) { process.stderr.write(`[peer.mjs ${new Date().toISOString()}] ${args.join(' ')}\n`) }

// vectors checks this file against testdata/protocol/vectors.json.
function vectors (root, file) {
  const v = JSON.parse(readFileSync(file, 'utf8'))
  let bad = 0
  for (const x of v.vectors) {
    const env = {
      from: Buffer.from(x.from_hex, 'hex'),
      data: Buffer.from(x.data_hex, 'hex'),
      seqno: Buffer.from(x.seqno_hex, 'hex'),
      topic: x.topic,
      signature: Buffer.from(x.signature_hex, 'hex')
    }
    const { line, signed, id } = check(root, env, undefined)
    const byHand = signedBytesByHand(env.from, env.data, env.seqno, env.topic)
    const wantSig = x.reason !== 'invalid_signature'
    const wantCanonical = x.reason !== 'malformed'
    const wantCommitmentSig = x.reason === 'bad_signature' ? false : (x.kind === 'Commitment' ? true : null)
    const wantAuthor = x.kind === 'Commitment' ? null : x.reason !== 'signer'
    const r = {
      vector: x.name,
      signed_bytes_ok: hex(signed) === x.signed_bytes_hex && hex(byHand) === x.signed_bytes_hex,
      id_ok: hex(id) === x.message_id_hex && line.id === x.message_id,
      sig_ok: line.sig_ok === wantSig,
      decoded_ok: line.decoded_ok === true,
      canonical_ok: line.canonical_ok === wantCanonical,
      author_ok: line.author_ok === wantAuthor,
      commitment_sig_ok: line.commitment_sig_ok === wantCommitmentSig
    }
    r.ok = Object.entries(r).every(([k, val]) => k === 'vector' || val === true)
    if (!r.ok) {
      bad++
      r.line = line
    }
    out(r)
  }
  out({ event: 'vectors', count: v.vectors.length, failures: bad })
  return bad === 0 ? 0 : 1
}

// excludeAuthor makes ps forward no message to its author (the envelope's
// `from`), as go-libp2p-pubsub and rust-libp2p do. js-libp2p-gossipsub
// 14.1.2 leaves out only the peer it got the message from, so a message
// it first hears from a relaying peer goes back to its author too; a Go
// node rejects such a copy as self-originated (RejectSelfOrigin), which
// go-libp2p-pubsub counts as an invalid message delivery: P4, -10 each
// (squared) under poai's parameters, so one bounce drops the relaying
// peer below 0 and out of the author's mesh (docs/protocol.md,
// "Interoperability"). --forward-to-author turns this off to show it.
function excludeAuthor (ps) {
  if (typeof ps.forwardMessage !== 'function') throw new Error('gossipsub has no forwardMessage to wrap')
  const forward = ps.forwardMessage.bind(ps)
  ps.forwardMessage = (msgIdStr, rawMsg, propagationSource, excludePeers) => {
    if (rawMsg?.from != null && rawMsg.from.length > 0) {
      excludePeers = new Set(excludePeers ?? [])
      excludePeers.add(base58btc.baseEncode(rawMsg.from))
    }
    return forward(msgIdStr, rawMsg, propagationSource, excludePeers)
  }
}

async function run (root, a) {
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify({ agentVersion: 'poai-interop-js/1' }),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictSign',
        msgIdFn: poaiMsgId,
        msgIdToStrFn: hex,
        // An opening may be 8 MiB (§1); the envelope adds a few bytes.
        maxInboundDataLength: 9 << 20,
        emitSelf: false,
        doPX: false,
        allowPublishToZeroTopicPeers: true,
        // Every devnet peer shares 127.0.0.1: do not count that against them.
        scoreParams: { IPColocationFactorWeight: 0 }
      })
    }
  })
  const ps = node.services.pubsub
  if (!a.forwardToAuthor) excludeAuthor(ps)
  const counts = {}
  let failures = 0
  let total = 0
  for (const t of Object.keys(TOPICS)) {
    counts[t] = { messages: 0, id_fail: 0, sig_fail: 0, decode_fail: 0, canonical_fail: 0, author_fail: 0, commitment_sig_fail: 0 }
    ps.subscribe(t)
  }
  ps.addEventListener('gossipsub:message', (evt) => {
    const { msg, msgId, propagationSource } = evt.detail
    if (msg.type !== 'signed') return
    const env = { from: msg.from.toMultihash().bytes, data: msg.data, seqno: seqnoBytes(msg.sequenceNumber), topic: msg.topic, signature: msg.signature }
    let line
    try {
      ({ line } = check(root, env, Buffer.from(msgId, 'hex')))
    } catch (e) {
      line = { topic: msg.topic, error: `check: ${e.stack}`, id_ok: false, sig_ok: false, decoded_ok: false }
    }
    line.source = propagationSource.toString()
    if (env.data.length <= a.maxHex) line.data_hex = hex(env.data)
    total++
    const c = counts[baseTopic(msg.topic)] ?? (counts[msg.topic] = { messages: 0, id_fail: 0, sig_fail: 0, decode_fail: 0, canonical_fail: 0, author_fail: 0, commitment_sig_fail: 0 })
    c.messages++
    const fails = [['id_fail', line.id_ok !== true], ['sig_fail', line.sig_ok !== true], ['decode_fail', line.decoded_ok !== true],
      ['canonical_fail', line.canonical_ok !== true], ['author_fail', line.author_ok === false], ['commitment_sig_fail', line.commitment_sig_ok === false]]
    let failed = false
    for (const [k, f] of fails) if (f) { c[k]++; failed = true }
    if (failed) failures++
    out(line)
  })

  out({ event: 'started', peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String), topics: Object.keys(TOPICS) })
  const targets = a.addrs.map(s => multiaddr(s))
  const dialAll = async () => {
    await Promise.all(targets.map(async (ma) => {
      const id = ma.getPeerId()
      if (id != null && node.getConnections().some(c => c.remotePeer.toString() === id)) return
      try {
        await node.dial(ma, { signal: AbortSignal.timeout(10_000) })
        log('connected', ma.toString())
      } catch (e) {
        log('dial failed', ma.toString(), e.message)
      }
    }))
  }
  await dialAll()
  const redial = setInterval(() => { dialAll().catch(() => {}) }, 5_000)

  let stopping = false
  const finish = async (reason) => {
    if (stopping) return
    stopping = true
    clearInterval(redial)
    const mesh = {}
    for (const t of Object.keys(TOPICS)) mesh[t] = ps.getMeshPeers(t).map(String)
    const scores = {}
    for (const p of ps.getPeers()) scores[p.toString()] = ps.getScore(p.toString())
    out({
      event: 'summary',
      reason,
      peer_id: node.peerId.toString(),
      messages: total,
      failures,
      per_topic: counts,
      mesh,
      connected: node.getConnections().map(c => c.remotePeer.toString()),
      scores
    })
    await Promise.race([node.stop(), new Promise(r => setTimeout(r, 5_000))])
    process.exit(0)
  }
  setTimeout(() => { finish('duration').catch(e => { log(e.stack); process.exit(2) }) }, a.duration)
  process.on('SIGINT', () => { finish('signal').catch(() => process.exit(2)) })
  process.on('SIGTERM', () => { finish('signal').catch(() => process.exit(2)) })
}

const a = parseArgs(process.argv.slice(2))
const root = protobuf.loadSync(a.proto)
root.resolveAll()
if (a.vectors != null) {
  process.exit(vectors(root, a.vectors))
} else {
  if (a.addrs.length === 0) log('no peer to dial: waiting to be dialed')
  await run(root, a)
}

/**
 * The view's flat table (src/view-table.ts): open addressing with backward-shift deletion, slots
 * reused after removal, values kept as numbers or as references, writer ids counted and forgotten.
 * Checked against a Map as the model, with keys chosen so that many share buckets or hashes.
 */
import test from 'ava'
import fc from 'fast-check'
import { ChunkDecoder, ChunkEncoder, KIND_NUMBER, sensorHash, writeReading } from '../src/chunk.ts'
import { F_NUM, R_FLAGS, R_HI, STRIDE, ViewTable, keyHash } from '../src/view-table.ts'
import { collidingIds } from './helpers.ts'

const [COLLIDE_A, COLLIDE_B] = collidingIds(keyHash, 'k')

/** Sensor ids for the model test: a few hundred, two with equal hashes, some not printable ASCII. */
const keyArb = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map(i => `s${i}`),
  fc.constantFrom(COLLIDE_A, COLLIDE_B, 'température/1', 'température/2', '東京/湿度')
)

type Op = { op: 'add' | 'remove' | 'find', key: string }
const opArb: fc.Arbitrary<Op> = fc.record({ op: fc.constantFrom('add', 'add', 'remove', 'find'), key: keyArb }) as fc.Arbitrary<Op>

/** The bytes of one reading of `sensor`, decoded up to the reading (so that findDecoded can be asked). */
function decoded (sensor: string): ChunkDecoder {
  const enc = new ChunkEncoder(256)
  enc.u8(1)
  enc.str('gw-a')
  enc.varuint(1)
  writeReading(enc, sensor, '0000000000000000', KIND_NUMBER, 1)
  const dec = new ChunkDecoder(enc.toBytes())
  dec.readChunkHeader()
  dec.next()
  return dec
}

test('keyHash equals sensorHash for printable-ASCII ids, and is a 30-bit integer for any id', t => {
  t.is(keyHash('line-1/sensor-7'), sensorHash('line-1/sensor-7'))
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 64, unit: 'grapheme' }), id => {
    const h = keyHash(id)
    return Number.isInteger(h) && h >= 0 && h < 2 ** 30 && (sensorHash(id) < 0 || sensorHash(id) === h)
  }))
})

test('adds, removes and finds agree with a Map, by string and by bytes, through growth and reuse of slots', t => {
  fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 600 }), ops => {
    const table = new ViewTable<never>(4)
    const model = new Map<string, number>()
    let maxLive = 0
    for (const { op, key } of ops) {
      const s = table.find(key)
      if (s !== (model.get(key) ?? -1)) return false
      if (op === 'add' && s < 0) {
        const slot = table.add(key)
        table.rec[slot * STRIDE + R_HI] = slot * 7
        model.set(key, slot)
      } else if (op === 'remove' && s >= 0) {
        table.remove(s)
        model.delete(key)
      }
      maxLive = Math.max(maxLive, model.size)
      if (table.count !== model.size) return false
    }
    for (const [key, slot] of model) {
      if (table.find(key) !== slot || table.findDecoded(decoded(key)) !== slot) return false
      if (table.rec[slot * STRIDE + R_HI] !== slot * 7 || table.keys[slot] !== key) return false
    }
    // Every slot number ever handed out was needed: removed slots are reused before new ones.
    return table.top === maxLive && table.findDecoded(decoded('absent')) === -1
  }), { numRuns: 300 })
  t.pass()
})

test('two ids with the same hash are told apart, and removing either leaves the other found', t => {
  t.is(keyHash(COLLIDE_A), keyHash(COLLIDE_B))
  for (const first of [COLLIDE_A, COLLIDE_B]) {
    const table = new ViewTable<never>()
    const a = table.add(COLLIDE_A)
    const b = table.add(COLLIDE_B)
    t.not(a, b)
    t.is(table.findDecoded(decoded(COLLIDE_B)), b)
    table.remove(first === COLLIDE_A ? a : b)
    const other = first === COLLIDE_A ? COLLIDE_B : COLLIDE_A
    t.is(table.find(first), -1)
    t.is(table.find(other), first === COLLIDE_A ? b : a)
    t.is(table.findDecoded(decoded(other)), first === COLLIDE_A ? b : a)
  }
})

test('a value is kept as a number or as a reference, and the reference is dropped when a number replaces it', t => {
  const table = new ViewTable<never>()
  const s = table.add('x')
  const obj = Object.freeze({ a: 1 })
  let flags = table.setValue(s, 0, obj)
  table.rec[s * STRIDE + R_FLAGS] = flags
  t.is(flags & F_NUM, 0)
  t.is(table.value(s), obj)
  flags = table.setValue(s, flags, -0.5)
  table.rec[s * STRIDE + R_FLAGS] = flags
  t.is(flags & F_NUM, F_NUM)
  t.is(table.value(s), -0.5)
  t.is(table.values[s], undefined, 'the object is not kept alive')
  flags = table.setValue(s, flags, 'text')
  table.rec[s * STRIDE + R_FLAGS] = flags
  t.is(table.value(s), 'text')
  flags = table.setValue(s, flags, null)
  table.rec[s * STRIDE + R_FLAGS] = flags
  t.is(table.value(s), null)
})

test('writer ids are kept while a slot names them or a hold is open, and forgotten when neither is', t => {
  const table = new ViewTable<never>()
  const x = table.add('x')
  const y = table.add('y')
  const a = table.holdWriter('gw-a')
  const b = table.holdWriter('gw-b')
  table.setWriter(x, -1, a)
  table.setWriter(y, -1, a)
  table.releaseWriter(a)
  t.is(table.writerCount, 2, 'gw-b is held until released')
  table.releaseWriter(b)
  t.is(table.writerCount, 1)
  t.is(table.writers[a], 'gw-a')
  const c = table.holdWriter('gw-c')
  table.setWriter(x, a, c)
  table.setWriter(y, a, c)
  t.is(table.writerCount, 1, 'gw-a is forgotten once no slot names it')
  t.is(table.writers[a], undefined)
  // A hold keeps a number that no slot names any more: it is not handed to another writer.
  table.remove(x)
  table.remove(y)
  t.is(table.writers[c], 'gw-c', 'still held')
  t.not(table.holdWriter('gw-d'), c)
  table.releaseWriter(c)
  t.is(table.writers[c], undefined)
  t.is(table.writerCount, 1, 'gw-d, still held')
  // A hundred writers that each win a key and then lose it to the next leave one id behind.
  const k = table.add('k')
  let prev = -1
  for (let i = 0; i < 100; i++) {
    const w = table.holdWriter(`gw-${i}`)
    table.setWriter(k, prev, w)
    table.releaseWriter(w)
    prev = w
  }
  t.is(table.writerCount, 2)
  t.is(table.writers[prev], 'gw-99')
})

/**
 * Error replies: every fastify error code and status is mapped to its edge-mesh code, validation
 * errors are described with or without an item name, details are filtered, Retry-After is given
 * for 429 and 503, and a real fastify app answers every kind of failure with `{ error, code,
 * details? }`, counted by code.
 */
import test from 'ava'
import { errorCodes, fastify, type FastifyInstance } from 'fastify'
import { EdgeMeshError, httpStatusFor, type ErrorCode } from '@edge-mesh/errors'
import { errorReplySchema, installErrorReplies, publicDetails, retryAfterSeconds, toEdgeMeshError, type ErrorReplies } from '../src/index.ts'

/** An error as fastify's validator raises it. */
function validationError (context: string, instancePath: string, message: string): Error {
  return Object.assign(new Error(`${context}${instancePath} ${message}`), { statusCode: 400, validation: [{ instancePath, message }], validationContext: context })
}

test('each fastify error code is mapped to its edge-mesh code and status', t => {
  const cases: Array<[Error, ErrorCode, number, RegExp]> = [
    [new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(), 'EM_ERR_UNSUPPORTED_MEDIA_TYPE', 415, /must be JSON/],
    [new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(), 'EM_ERR_PAYLOAD_TOO_LARGE', 413, /over the size limit/],
    [new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY(), 'EM_ERR_INVALID_BODY', 400, /^the body is not valid JSON: /],
    [new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY(), 'EM_ERR_INVALID_BODY', 400, /^the body is not valid JSON: /],
    [new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH(), 'EM_ERR_INVALID_BODY', 400, /^the body is not valid JSON: /],
    [new errorCodes.FST_ERR_NOT_FOUND(), 'EM_ERR_NOT_FOUND', 404, /^no such route$/],
    [new SyntaxError('Unexpected token'), 'EM_ERR_INVALID_BODY', 400, /^the body is not valid JSON: Unexpected token$/]
  ]
  for (const [err, code, status, message] of cases) {
    const mapped = toEdgeMeshError(err)
    const what = (err as { code?: string }).code ?? err.name
    t.is(mapped?.code, code, what)
    t.is(mapped === undefined ? undefined : httpStatusFor(mapped), status, what)
    t.regex(mapped?.message ?? '', message, what)
    t.deepEqual(mapped?.details, {}, what)
  }
})

test('other errors are mapped by their status: 400, 404, 413, 415 and 503; any other status is no edge-mesh error', t => {
  const withStatus = (statusCode: number): Error => Object.assign(new Error(`status ${statusCode}`), { code: 'FST_ERR_SOMETHING', statusCode })
  const cases: Array<[number, ErrorCode]> = [
    [400, 'EM_ERR_INVALID_BODY'],
    [404, 'EM_ERR_NOT_FOUND'],
    [413, 'EM_ERR_PAYLOAD_TOO_LARGE'],
    [415, 'EM_ERR_UNSUPPORTED_MEDIA_TYPE'],
    [503, 'EM_ERR_UNAVAILABLE']
  ]
  for (const [status, code] of cases) {
    const mapped = toEdgeMeshError(withStatus(status))
    t.is(mapped?.code, code, String(status))
    t.is(mapped?.message, `status ${status}`)
    t.is(mapped === undefined ? undefined : httpStatusFor(mapped), status)
  }
  for (const status of [401, 429, 500]) t.is(toEdgeMeshError(withStatus(status)), undefined, String(status))
  t.is(toEdgeMeshError(new TypeError('a bug')), undefined)
  t.is(toEdgeMeshError('a string'), undefined)
  const own = new EdgeMeshError('EM_ERR_OVERLOADED', 'busy', { retryAfterMs: 1000 })
  t.is(toEdgeMeshError(own), own, 'an edge-mesh error is kept as it is')
})

test('validation errors: the body is EM_ERR_INVALID_BODY, other parts EM_ERR_INVALID_OPTIONS; an item name describes array bodies by index and field', t => {
  const item = { bodyItem: 'reading' }
  const field = toEdgeMeshError(validationError('body', '/3/value', 'must be number'), item)
  t.is(field?.code, 'EM_ERR_INVALID_BODY')
  t.is(field?.message, 'reading 3 "value" must be number')
  t.deepEqual(field?.details, { path: '/3/value', index: 3, field: 'value' })
  const whole = toEdgeMeshError(validationError('body', '/2', 'must be object'), item)
  t.is(whole?.message, 'reading 2 must be object')
  t.deepEqual(whole?.details, { path: '/2', index: 2 })
  const root = toEdgeMeshError(validationError('body', '', 'must be array'), item)
  t.is(root?.message, 'body must be array')
  t.deepEqual(root?.details, { path: '' })

  const plain = toEdgeMeshError(validationError('body', '/3/value', 'must be number'))
  t.is(plain?.code, 'EM_ERR_INVALID_BODY')
  t.is(plain?.message, 'body.3.value must be number')
  t.deepEqual(plain?.details, { in: 'body', path: '/3/value' })

  for (const init of [{}, item]) {
    const query = toEdgeMeshError(validationError('querystring', '/limit', 'must match pattern "^\\d{1,6}$"'), init)
    t.is(query?.code, 'EM_ERR_INVALID_OPTIONS')
    t.is(query?.message, 'querystring.limit must match pattern "^\\d{1,6}$"')
    t.deepEqual(query?.details, { in: 'querystring', path: '/limit' })
  }
})

test('publicDetails shows a client error\'s details but its cause, and only the retry hint of a server error\'s', t => {
  const client = new EdgeMeshError('EM_ERR_NOT_FOUND', 'no sensor', { region: 'r1', sensor: 's', cause: 'inner' })
  t.deepEqual(publicDetails(client, 404), { region: 'r1', sensor: 's' })
  const server = new EdgeMeshError('EM_ERR_UNAVAILABLE', 'storage failed', { region: 'r1', retryAfterMs: 5000 })
  t.deepEqual(publicDetails(server, 503), { retryAfterMs: 5000 })
  t.deepEqual(publicDetails(new EdgeMeshError('EM_ERR_INTERNAL', 'bug', { path: '/secret' }), 500), {})
})

test('retryAfterSeconds rounds the retry hint up to whole seconds, at least 1, and is 5 without a hint', t => {
  const after = (details: Record<string, unknown>): number => retryAfterSeconds(new EdgeMeshError('EM_ERR_OVERLOADED', 'busy', details))
  t.is(after({ retryAfterMs: 1000 }), 1)
  t.is(after({ retryAfterMs: 1001 }), 2)
  t.is(after({ retryAfterMs: 1 }), 1)
  t.is(after({ retryAfterMs: 0 }), 5)
  t.is(after({ retryAfterMs: '3000' }), 5)
  t.is(after({}), 5)
})

interface App {
  app: FastifyInstance
  replies: ErrorReplies
  logged: Array<{ obj: Record<string, unknown>, msg: string }>
}

/** A fastify app with the error replies and routes that fail in every way. */
function errorApp (t: import('ava').ExecutionContext): App {
  const logged: App['logged'] = []
  const app = fastify({ bodyLimit: 200 })
  app.removeContentTypeParser('text/plain')
  const replies = installErrorReplies(app, { logger: { error: (obj, msg) => { logged.push({ obj: obj as Record<string, unknown>, msg }) } }, component: 'test:http', bodyItem: 'item' })
  app.post('/items', {
    schema: {
      body: { type: 'array', items: { type: 'object', required: ['value'], properties: { value: { type: 'number' } } } },
      response: { 200: { type: 'object', properties: { n: { type: 'integer' } } }, '4xx': errorReplySchema }
    }
  }, async req => ({ n: (req.body as unknown[]).length }))
  app.get('/busy', async () => { throw new EdgeMeshError('EM_ERR_OVERLOADED', 'too many', { retryAfterMs: 1500 }) })
  app.get('/down', async () => { throw new EdgeMeshError('EM_ERR_UNAVAILABLE', 'storage failed', { region: 'r1', retryAfterMs: 5000 }, { cause: new Error('disk') }) })
  app.get('/missing', { schema: { response: { '4xx': errorReplySchema } } }, async () => { throw new EdgeMeshError('EM_ERR_NOT_FOUND', 'no sensor', { region: 'r1', nested: { a: [1] }, cause: 'x' }) })
  app.get('/bug', async () => { throw new TypeError('undefined is not a function') })
  t.teardown(async () => { await app.close() })
  return { app, replies, logged }
}

test('a fastify app with the error replies answers every failure with { error, code, details? }, Retry-After on 429 and 503, and counts them by code', async t => {
  const { app, replies, logged } = errorApp(t)
  const json = { 'content-type': 'application/json' }

  const ok = await app.inject({ method: 'POST', url: '/items', headers: json, payload: '[{"value":1}]' })
  t.is(ok.statusCode, 200)
  t.deepEqual(ok.json(), { n: 1 })

  const invalid = await app.inject({ method: 'POST', url: '/items', headers: json, payload: '[{"value":1},{"value":"x"}]' })
  t.is(invalid.statusCode, 400)
  t.deepEqual(invalid.json(), { error: 'item 1 "value" must be number', code: 'EM_ERR_INVALID_BODY', details: { path: '/1/value', index: 1, field: 'value' } })

  const notJson = await app.inject({ method: 'POST', url: '/items', headers: json, payload: '[{' })
  t.is(notJson.statusCode, 400)
  t.like(notJson.json(), { code: 'EM_ERR_INVALID_BODY' })
  t.regex(notJson.json().error, /^the body is not valid JSON: /)
  const empty = await app.inject({ method: 'POST', url: '/items', headers: json, payload: '' })
  t.is(empty.statusCode, 400)
  t.like(empty.json(), { code: 'EM_ERR_INVALID_BODY' })
  const text = await app.inject({ method: 'POST', url: '/items', headers: { 'content-type': 'text/plain' }, payload: 'hello' })
  t.is(text.statusCode, 415)
  t.deepEqual(text.json(), { error: 'the body must be JSON (Content-Type: application/json)', code: 'EM_ERR_UNSUPPORTED_MEDIA_TYPE' })
  const large = await app.inject({ method: 'POST', url: '/items', headers: json, payload: JSON.stringify(Array.from({ length: 50 }, () => ({ value: 1 }))) })
  t.is(large.statusCode, 413)
  t.deepEqual(large.json(), { error: 'the request body is over the size limit', code: 'EM_ERR_PAYLOAD_TOO_LARGE' })

  const busy = await app.inject({ method: 'GET', url: '/busy' })
  t.is(busy.statusCode, 429)
  t.is(busy.headers['retry-after'], '2')
  t.deepEqual(busy.json(), { error: 'too many', code: 'EM_ERR_OVERLOADED', details: { retryAfterMs: 1500 } })
  const down = await app.inject({ method: 'GET', url: '/down' })
  t.is(down.statusCode, 503)
  t.is(down.headers['retry-after'], '5')
  t.deepEqual(down.json(), { error: 'storage failed', code: 'EM_ERR_UNAVAILABLE', details: { retryAfterMs: 5000 } }, 'a server error shows only its retry hint')
  const missing = await app.inject({ method: 'GET', url: '/missing' })
  t.is(missing.statusCode, 404)
  t.is(missing.headers['retry-after'], undefined)
  t.deepEqual(missing.json(), { error: 'no sensor', code: 'EM_ERR_NOT_FOUND', details: { region: 'r1', nested: { a: [1] } } }, 'the reply schema keeps every detail but the cause')
  const bug = await app.inject({ method: 'GET', url: '/bug' })
  t.is(bug.statusCode, 500)
  t.deepEqual(bug.json(), { error: 'internal error', code: 'EM_ERR_INTERNAL' })
  const noRoute = await app.inject({ method: 'GET', url: '/nope?x=1' })
  t.is(noRoute.statusCode, 404)
  t.regex(String(noRoute.headers['content-type']), /^application\/json/)
  t.deepEqual(noRoute.json(), { error: 'no route GET /nope', code: 'EM_ERR_NOT_FOUND' })

  t.deepEqual(replies.counts(), {
    EM_ERR_INVALID_BODY: 3,
    EM_ERR_UNSUPPORTED_MEDIA_TYPE: 1,
    EM_ERR_PAYLOAD_TOO_LARGE: 1,
    EM_ERR_OVERLOADED: 1,
    EM_ERR_UNAVAILABLE: 1,
    EM_ERR_NOT_FOUND: 2,
    EM_ERR_INTERNAL: 1
  })
  // Logged: the internal error and the 503, with the request; client errors are not.
  t.deepEqual(logged.map(l => [l.msg, l.obj.code, l.obj.method, l.obj.url]), [
    ['test:http request failed', 'EM_ERR_UNAVAILABLE', 'GET', '/down'],
    ['test:http request failed', 'EM_ERR_INTERNAL', 'GET', '/bug']
  ])
  t.true(logged[1].obj.err instanceof TypeError)
})

test('counts() is a copy: changing it does not change the counts', async t => {
  const { app, replies } = errorApp(t)
  await app.inject({ method: 'GET', url: '/busy' })
  const counts = replies.counts()
  counts.EM_ERR_OVERLOADED = 99
  t.deepEqual(replies.counts(), { EM_ERR_OVERLOADED: 1 })
})

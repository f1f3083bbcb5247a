/**
 * A bounded wait on a promise whose outcome does not matter, only whether it came: a stop that
 * drains or ends something, then goes on (or forces it) after the bound.
 *
 *   if (!await settlesWithin(pumping, 5000)) log.warn('stopped with readings still in flight')
 */

/** True if `p` settles (resolves or rejects) within `ms`; its outcome is ignored. */
export async function settlesWithin (p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(false) }, ms) })
  try {
    return await Promise.race([p.then(() => true, () => true), timeout])
  } finally {
    clearTimeout(timer)
  }
}

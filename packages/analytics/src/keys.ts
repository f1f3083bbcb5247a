/**
 * LevelDB key layout of the analytics store (keys and values are UTF-8 strings; values are JSON).
 *
 * `␀` is the separator '\x00'. Region names are `[A-Za-z0-9._-]`, and sensor and writer ids
 * refuse control characters (@edge-mesh/region-state `isValidSensorId`, `isValidWriterId`), so no
 * part can contain it, and every prefix ending in `␀` has the exclusive upper bound "same prefix
 * with the last `␀` replaced by '\x01'". Times are fixed-width lowercase hex, so keys sort by time:
 * `<t>` is the reading's 16-hex-digit HLC timestamp, `<ms12>` a wall time in ms as 12 hex digits
 * (the first 12 digits of an HLC timestamp are its wall time, so `<t>` keys can be bounded by `<ms12>`).
 *
 *   m␀format                                     {"v":1,"windowMs":N}
 *   s␀<region>␀<sensor>                          sensor state: newest (t, writer), counts, anomaly baseline
 *   h␀<region>␀<sensor>␀<t>␀<writer>             history: the stored value, as recorded
 *   ws␀<region>␀<sensor>␀<ms12 window start>     window aggregate of one sensor
 *   wr␀<region>␀<ms12 window start>              window aggregate of a region (all its sensors)
 *   as␀<region>␀<sensor>␀<t>␀<writer>            anomaly, by sensor
 *   ar␀<region>␀<t>␀<writer>␀<sensor>            the same anomaly, by region
 *   ag␀<t>␀<writer>␀<region>␀<sensor>            the same anomaly, by time over every region
 */
export const SEP = '\x00'
const AFTER_SEP = '\x01'

export const FORMAT_KEY = 'm\x00format'
export const SENSOR_STATE_PREFIX = 's\x00'
export const ANOMALY_GLOBAL_PREFIX = 'ag\x00'

/** Wall milliseconds as 12 lowercase hex digits (0 .. 2^48 - 1). */
export const ms12 = (ms: number): string => ms.toString(16).padStart(12, '0')

/** The exclusive upper bound of every key starting with `prefix` (which ends with the separator). */
export const prefixEnd = (prefix: string): string => prefix.slice(0, -1) + AFTER_SEP

export const sensorStateKey = (region: string, sensor: string): string => `s\x00${region}\x00${sensor}`
export const historyPrefix = (region: string, sensor: string): string => `h\x00${region}\x00${sensor}\x00`
export const historyKey = (region: string, sensor: string, t: string, writer: string): string =>
  `h\x00${region}\x00${sensor}\x00${t}\x00${writer}`
export const sensorWindowPrefix = (region: string, sensor: string): string => `ws\x00${region}\x00${sensor}\x00`
export const regionWindowPrefix = (region: string): string => `wr\x00${region}\x00`
export const anomalySensorPrefix = (region: string, sensor: string): string => `as\x00${region}\x00${sensor}\x00`
export const anomalyRegionPrefix = (region: string): string => `ar\x00${region}\x00`

export interface AnomalyKeyParts { region: string, sensor: string, t: string, writer: string }

/** The three keys of one anomaly: by sensor, by region, by time. */
export function anomalyKeys (a: AnomalyKeyParts): [string, string, string] {
  return [
    `as\x00${a.region}\x00${a.sensor}\x00${a.t}\x00${a.writer}`,
    `ar\x00${a.region}\x00${a.t}\x00${a.writer}\x00${a.sensor}`,
    `ag\x00${a.t}\x00${a.writer}\x00${a.region}\x00${a.sensor}`
  ]
}

/** The parts of an `ag␀` key, or undefined if it does not have them. */
export function parseGlobalAnomalyKey (key: string): AnomalyKeyParts | undefined {
  const parts = key.split(SEP)
  if (parts.length !== 5 || parts[0] !== 'ag') return undefined
  return { t: parts[1], writer: parts[2], region: parts[3], sensor: parts[4] }
}

/** Region and sensor of an `s␀` key, or undefined if it does not have them. */
export function parseSensorStateKey (key: string): { region: string, sensor: string } | undefined {
  const parts = key.split(SEP)
  if (parts.length !== 3 || parts[0] !== 's') return undefined
  return { region: parts[1], sensor: parts[2] }
}

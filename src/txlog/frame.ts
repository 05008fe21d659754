import { crc32 } from 'node:zlib';

/**
 * Record framing of the transaction log: `[length u32 LE][crc32 u32 LE][payload]`, payload being UTF-8 JSON.
 * The CRC covers the payload. A frame whose length runs past the end of the data, or whose CRC does not
 * match, ends the valid prefix (a torn or corrupt tail); so does a zero length (the preallocated zeros after
 * the last record).
 */
export const FRAME_HEADER = 8;
/** No record may be larger than this (a length field above it is treated as corruption). */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export function encodeFrame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32(payload) >>> 0, 4);
  payload.copy(out, FRAME_HEADER);
  return out;
}

export interface DecodedFrame {
  payload: Buffer;
  /** Byte offset of the frame in the buffer. */
  offset: number;
  /** Byte offset just past the frame. */
  end: number;
}

/** The valid frames at the start of `data` and where the valid prefix ends. */
export function decodeFrames(data: Buffer): { frames: DecodedFrame[]; validBytes: number } {
  const frames: DecodedFrame[] = [];
  let at = 0;
  while (at + FRAME_HEADER <= data.length) {
    const len = data.readUInt32LE(at);
    const crc = data.readUInt32LE(at + 4);
    // A zero length ends the records: no record is empty, and a preallocated segment's tail is zeros.
    if (len === 0 || len > MAX_RECORD_BYTES || at + FRAME_HEADER + len > data.length) break;
    const payload = data.subarray(at + FRAME_HEADER, at + FRAME_HEADER + len);
    if ((crc32(payload) >>> 0) !== crc) break;
    frames.push({ payload, offset: at, end: at + FRAME_HEADER + len });
    at += FRAME_HEADER + len;
  }
  return { frames, validBytes: at };
}

import { endRecordJson, sentRecordJson } from '../../src/txlog/TxLogSender';
import { parseRecord } from '../../src/txlog/records';
import { newMessageId } from '../../src/message/messageId';

// The end and Sent records are built as text on the hot path: the text must be what JSON.stringify gives
// (same keys, same order), so old and new records read the same, and any uid still comes out as valid JSON.
describe('txlog record text', () => {
  const uids = [newMessageId(), 'quarantined-lsn-12', 'a"b\\c', 'line\nbreak', 'ü'];

  it.each(uids)('end record for uid %j equals JSON.stringify and parses back', (uid) => {
    for (const [outcome, source] of [['commit', 'transaction'], ['rollback', 'check-back'], ['rollback', 'admin']] as const) {
      const r = { type: 'end' as const, lsn: 41, uid, outcome, source, at: 1_733_000_000_123 };
      const text = endRecordJson(r);
      expect(text).toBe(JSON.stringify(r));
      expect(parseRecord(Buffer.from(text))).toEqual(r);
    }
  });

  it.each(uids)('Sent record for uid %j equals JSON.stringify and parses back', (uid) => {
    const text = sentRecordJson(7, uid, 1_733_000_000_456);
    expect(text).toBe(JSON.stringify({ type: 'sent', lsn: 7, uid, at: 1_733_000_000_456 }));
    expect(parseRecord(Buffer.from(text))).toEqual({ type: 'sent', lsn: 7, uid, at: 1_733_000_000_456 });
  });
});

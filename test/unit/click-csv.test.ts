import assert from 'node:assert/strict';
import { test } from 'node:test';
import { csvCell, csvFileName, csvHeader, csvRows } from '../../src/analytics/click-csv.js';
import { makeClick } from '../helpers/enriched-click-fixture.js';

test('cells: RFC 4180 quoting, and formula starts made text', () => {
  const cases: [string | null, string][] = [
    [null, ''],
    ['', ''],
    ['plain', 'plain'],
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    ['two\r\nlines', '"two\r\nlines"'],
    ['=1+1', "'=1+1"],
    ['+1', "'+1"],
    ['-1', "'-1"],
    ['@SUM(A1)', "'@SUM(A1)"],
    ['\tx', "'\tx"],
    ['\rx', `"'\rx"`],
    ['=HYPERLINK("u","t")', `"'=HYPERLINK(""u"",""t"")"`],
    ['a=b', 'a=b'],
    [' =1', ' =1'],
  ];
  for (const [value, expected] of cases) assert.equal(csvCell(value), expected, JSON.stringify(value));
});

test('the ip column is there only when asked for', () => {
  const click = makeClick({ id: '01900000-0000-7000-8000-000000000001', code: 'c', at: '2025-03-10T10:00:00.000Z', ip: '203.0.113.9', userAgent: 'ua' });
  assert.equal(csvHeader(false), 'id,at,code,method,bot,device,referrer_host,country,browser,os,referrer,user_agent\r\n');
  assert.equal(csvHeader(true), 'id,at,code,method,bot,device,referrer_host,country,browser,os,referrer,user_agent,ip\r\n');
  assert.equal(csvRows([click], false), '01900000-0000-7000-8000-000000000001,2025-03-10T10:00:00.000Z,c,GET,false,desktop,,,Chrome,Windows,,ua\r\n');
  assert.equal(csvRows([click], true), '01900000-0000-7000-8000-000000000001,2025-03-10T10:00:00.000Z,c,GET,false,desktop,,,Chrome,Windows,,ua,203.0.113.9\r\n');
});

test('file names carry the code and the range, without colons', () => {
  assert.equal(csvFileName('abc', new Date('2025-03-10T10:00:00.123Z'), new Date('2025-03-11T00:00:00Z')), 'shunt-abc-20250310T100000Z-20250311T000000Z.csv');
});

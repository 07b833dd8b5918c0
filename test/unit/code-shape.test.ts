import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CODE_PATTERN, codeInPath, codeInQrPath, isCode } from '../../src/links/code-shape.js';

const SAMPLES = ['a', 'Z9', 'my-link', 'My_Link_2025', 'x'.repeat(64), 'x'.repeat(65), '', 'a b', 'a+', 'a%00', 'é', 'a/b', 'a.b', 'a\u0000', '-', '_'];

describe('isCode', () => {
  test('agrees with the documented pattern on every sample', () => {
    for (const sample of SAMPLES) assert.equal(isCode(sample), CODE_PATTERN.test(sample), sample);
  });
});

describe('codeInPath', () => {
  test('finds the code of /{code} and /{code}?query only', () => {
    assert.equal(codeInPath('/abc'), 'abc');
    assert.equal(codeInPath('/abc?x=1'), 'abc');
    assert.equal(codeInPath('/abc?'), 'abc');
    assert.equal(codeInPath(`/${'x'.repeat(64)}`), 'x'.repeat(64));
    for (const url of ['/', '', 'abc', '/abc/', '/abc+', '/abc/qr', `/${'x'.repeat(65)}`, '/a%62', '/abc#x', '//abc', '/api/v1/links']) {
      assert.equal(codeInPath(url), null, url);
    }
  });
});

describe('codeInQrPath', () => {
  test('finds the code of /{code}/qr and /{code}/qr?query only', () => {
    assert.equal(codeInQrPath('/abc/qr'), 'abc');
    assert.equal(codeInQrPath('/abc/qr?format=png&size=512'), 'abc');
    assert.equal(codeInQrPath('/abc/qr?'), 'abc');
    assert.equal(codeInQrPath(`/${'x'.repeat(64)}/qr`), 'x'.repeat(64));
    for (const url of ['/abc', '/abc/', '/abc/qr/', '/abc/qrx', '/abc/q', '/abc+/qr', '/abc/QR', '//qr', '/qr', `/${'x'.repeat(65)}/qr`, '/a%62/qr', '/abc/qr#x']) {
      assert.equal(codeInQrPath(url), null, url);
    }
  });
});

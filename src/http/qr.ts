import QRCode from 'qrcode';

export type QrFormat = 'svg' | 'png';

export async function renderQr(text: string, format: QrFormat, size: number): Promise<{ contentType: string; body: string | Buffer }> {
  if (format === 'png') {
    return { contentType: 'image/png', body: await QRCode.toBuffer(text, { type: 'png', width: size, margin: 2, errorCorrectionLevel: 'M' }) };
  }
  return {
    contentType: 'image/svg+xml',
    body: await QRCode.toString(text, { type: 'svg', width: size, margin: 2, errorCorrectionLevel: 'M' }),
  };
}

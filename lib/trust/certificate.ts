/**
 * Who a Fulcio certificate says signed: the SAN and the GitHub Actions
 * extensions under 1.3.6.1.4.1.57264.1 (Fulcio's OID registry). Read only from
 * a certificate that already chained to a trusted root.
 */
import { ASN1Obj, type X509Certificate } from '@sigstore/core';

const FULCIO = '1.3.6.1.4.1.57264.1';

/** Version 1 extensions hold raw bytes; version 2 ones (.8 and up) a DER UTF8String. */
const OID = {
  issuerV1: `${FULCIO}.1`,
  issuer: `${FULCIO}.8`,
  buildSignerUri: `${FULCIO}.9`,
  sourceRepositoryUri: `${FULCIO}.12`,
  sourceRepositoryDigest: `${FULCIO}.13`,
  sourceRepositoryRef: `${FULCIO}.14`,
  sourceRepositoryIdentifier: `${FULCIO}.15`,
  sourceRepositoryOwnerUri: `${FULCIO}.16`,
  sourceRepositoryOwnerIdentifier: `${FULCIO}.17`,
  runInvocationUri: `${FULCIO}.21`,
} as const;

export interface CertificateIdentity {
  /** The SAN: for GitHub Actions, https://github.com/OWNER/REPO/PATH@REF of the signing workflow. */
  subjectAlternativeName?: string;
  issuer?: string;
  buildSignerUri?: string;
  sourceRepositoryUri?: string;
  sourceRepositoryDigest?: string;
  sourceRepositoryRef?: string;
  sourceRepositoryIdentifier?: string;
  sourceRepositoryOwnerUri?: string;
  sourceRepositoryOwnerIdentifier?: string;
  runInvocationUri?: string;
}

const UTF8_STRING = 12;

/** A v2 extension's value, or undefined when it is absent or not a DER UTF8String (then it matches nothing). */
function utf8Extension(cert: X509Certificate, oid: string): string | undefined {
  const ext = cert.extension(oid);
  if (!ext) return undefined;
  try {
    const obj = ASN1Obj.parseBuffer(Buffer.from(ext.value));
    if (obj.tag.number !== UTF8_STRING || obj.tag.constructed) return undefined;
    return obj.value.toString('utf8');
  } catch {
    return undefined;
  }
}

export function certificateIdentity(cert: X509Certificate): CertificateIdentity {
  return {
    subjectAlternativeName: cert.subjectAltName,
    issuer: utf8Extension(cert, OID.issuer) ?? cert.extension(OID.issuerV1)?.value.toString('utf8'),
    buildSignerUri: utf8Extension(cert, OID.buildSignerUri),
    sourceRepositoryUri: utf8Extension(cert, OID.sourceRepositoryUri),
    sourceRepositoryDigest: utf8Extension(cert, OID.sourceRepositoryDigest),
    sourceRepositoryRef: utf8Extension(cert, OID.sourceRepositoryRef),
    sourceRepositoryIdentifier: utf8Extension(cert, OID.sourceRepositoryIdentifier),
    sourceRepositoryOwnerUri: utf8Extension(cert, OID.sourceRepositoryOwnerUri),
    sourceRepositoryOwnerIdentifier: utf8Extension(cert, OID.sourceRepositoryOwnerIdentifier),
    runInvocationUri: utf8Extension(cert, OID.runInvocationUri),
  };
}

/** OWNER/REPO from https://github.com/OWNER/REPO, for messages. */
export function repoName(uri: string | undefined): string | undefined {
  if (!uri) return undefined;
  try {
    return new URL(uri).pathname.replace(/^\/+|\/+$/g, '') || undefined;
  } catch {
    return uri;
  }
}

import Foundation
import SecureChannelPKI

/// How `cert inspect` draws what the PKI module describes: a block of aligned rows per item.
enum InspectRows {
    /// `  Label:               value`, labels padded to one column.
    static func row(_ label: String, _ value: String) -> String {
        "  " + (label + ":").padding(toLength: 22, withPad: " ", startingAt: 0) + value
    }
}

extension CertificateDescription {
    /// The text block `cert inspect` prints.
    func text(index: Int? = nil, of total: Int? = nil) -> String {
        var lines: [String] = []
        if let index, let total, total > 1 { lines.append("Certificate \(index) of \(total)") }
        func row(_ label: String, _ value: String) { lines.append(InspectRows.row(label, value)) }
        row("Subject", subject)
        row("Issuer", issuer + (selfIssued ? " (self-issued)" : ""))
        row("Serial", serial)
        row("Version", "v\(version)")
        row("Not before", CertificateDescription.format(notBefore))
        let left = DaysLeft.phrase(daysLeft, expired: notAfter < Date())
        row("Not after", "\(CertificateDescription.format(notAfter)) (\(left))")
        row(
            "Alternative names",
            subjectAlternativeNames.isEmpty ? "(none)" : subjectAlternativeNames.joined(separator: ", "))
        if let spiffeID { row("SPIFFE ID", spiffeID + " (X.509-SVID)") }
        row("Key usage", keyUsage.isEmpty ? "(none)" : keyUsage.joined(separator: ", "))
        row("Extended key usage", extendedKeyUsage.isEmpty ? "(none)" : extendedKeyUsage.joined(separator: ", "))
        row("Basic constraints", basicConstraints ?? "(none)")
        row("Public key", "\(keyType) (\(keyBits) bits)")
        row("Signature", signatureAlgorithm)
        row("SHA-256 fingerprint", sha256Fingerprint)
        row("Public key SHA-256", publicKeySHA256)
        for warning in warnings { lines.append("  warning: \(warning)") }
        return lines.joined(separator: "\n")
    }
}

extension KeyDescription {
    /// The text block `cert inspect` prints.
    func text() -> String {
        var lines = ["Private key"]
        func row(_ label: String, _ value: String) { lines.append(InspectRows.row(label, value)) }
        row("Format", format)
        if let keyType, let keyBits { row("Key", "\(keyType) (\(keyBits) bits)") }
        if let publicKeySHA256 { row("Public key SHA-256", publicKeySHA256) }
        for warning in warnings { lines.append("  warning: \(warning)") }
        return lines.joined(separator: "\n")
    }
}

extension CRLDescription {
    /// The text block `cert inspect` prints.
    func text() -> String {
        var lines = ["Certificate revocation list (X.509 v2)"]
        func row(_ label: String, _ value: String) { lines.append(InspectRows.row(label, value)) }
        row("Issuer", issuer)
        row("CRL number", number ?? "(none)")
        row("This update", CertificateDescription.format(thisUpdate))
        row(
            "Next update",
            nextUpdate.map { CertificateDescription.format($0) + (expired ? " (EXPIRED)" : "") } ?? "(none)")
        row("Authority key id", authorityKeyIdentifier ?? "(none)")
        row("Signature", signatureAlgorithm)
        row("Revoked", "\(entries.count)")
        for entry in entries {
            lines.append(
                "    serial \(entry.serial)  revoked \(CertificateDescription.format(entry.revocationDate))  reason \(entry.reason?.name ?? "(none)")"
            )
        }
        return lines.joined(separator: "\n")
    }
}

extension RequestDescription {
    /// The text block `cert inspect` prints.
    func text() -> String {
        var lines = ["Certificate request (PKCS#10)"]
        func row(_ label: String, _ value: String) { lines.append(InspectRows.row(label, value)) }
        row("Subject", subject)
        row(
            "Alternative names",
            subjectAlternativeNames.isEmpty ? "(none)" : subjectAlternativeNames.joined(separator: ", "))
        row(
            "Requested extensions", requestedExtensions.isEmpty ? "(none)" : requestedExtensions.joined(separator: "; ")
        )
        row("Public key", "\(keyType) (\(keyBits) bits)")
        row("Public key SHA-256", publicKeySHA256)
        row("Signature", "\(signatureAlgorithm), " + (signatureValid ? "self-signature holds" : "INVALID"))
        for warning in warnings { lines.append("  warning: \(warning)") }
        return lines.joined(separator: "\n")
    }
}

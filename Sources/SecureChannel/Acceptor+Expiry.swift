import Foundation
import NIOCore
import SecureChannelPKI
import X509

/// Certificates that expire: the warning about our own, and the close of a connection whose peer's certificate
/// expired.
extension Acceptor {
    /// The warning for a certificate that expired or is about to: within `horizonDays`, or, for a certificate that
    /// lives less than that (short-lived by design, renewed at two thirds of its life), once less than a third of
    /// its life is left. Nil when it is not worth a word.
    static func expiryWarning(_ what: String, _ certificate: Certificate, horizonDays: Int, now: Date) -> String? {
        let life = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        let left = certificate.notValidAfter.timeIntervalSince(now)
        guard left < min(TimeInterval(horizonDays) * 86_400, life / 3) else { return nil }
        let date = CertificateDescription.format(certificate.notValidAfter)
        if left < 0 { return "\(what) EXPIRED on \(date): renew it ('securechannel ca renew')" }
        let within =
            left >= 86_400
            ? DaysLeft.days(DaysLeft.count(until: certificate.notValidAfter, now: now))
            : left >= 3_600 ? "\(Int(left / 3_600)) h" : left >= 60 ? "\(Int(left / 60)) min" : "\(Int(left)) s"
        return "\(what) expires on \(date) (in \(within)): renew it soon"
    }

    func expired(_ certificate: Certificate) -> String {
        "\(peerWord) certificate expired at \(CertificateDescription.format(certificate.notValidAfter))"
    }

    /// Closes the connection the moment its client certificate expires, on the connection's event loop. The
    /// 0.5 s sweep stays as the backstop (resumed sessions, wall-clock changes), but it runs on Swift's shared
    /// pool and could be late under load.
    func closeAtExpiry(_ channel: any Channel, _ record: ConnectionRecord) {
        guard let certificate = record.certificate else { return }
        let seconds = min(max(0, certificate.notValidAfter.timeIntervalSinceNow), 10 * 365 * 86_400)
        let task = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9)) + .milliseconds(1)) {
            // Said only when it happens: nothing formatted per connection for a close that rarely comes.
            record.noteClose(self.expired(certificate))
            channel.close(promise: nil)
        }
        channel.closeFuture.whenComplete { _ in task.cancel() }
    }
}

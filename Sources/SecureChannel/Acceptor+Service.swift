import NIOCore

/// How the bodies on an ``Acceptor`` (``MessageServer``, the tunnels, the online CA) serve their connections, and
/// what they tell it about them.
extension Acceptor {
    /// How an admitted connection is served once its pipeline is set up (its autoRead is off).
    package enum Service: Sendable {
        /// A task per connection, on the connection's event loop, runs the closure; the connection is served until
        /// it returns.
        case task(@Sendable (any Channel, ConnectionRecord) async -> Void)
        /// No task: the closure runs once, on the connection's event loop, and the pipeline's handlers do the rest;
        /// the connection is served until its channel closes. Less memory per connection, less work per accept.
        case onEventLoop(@Sendable (any Channel, ConnectionRecord) -> Void)
    }

    /// Counts one answered message (of a connection that marks no reply busy: the online CA's).
    package func countMessage(_ record: ConnectionRecord) {
        record.countMessage()
        metrics.messages.increment()
    }

    /// Counts one answered message and ends its busy mark (``ConnectionRecord/beginReply()``); true when the
    /// server is shutting down and the connection should close after this reply.
    package func endReply(_ record: ConnectionRecord) -> Bool {
        metrics.messages.increment()
        return record.endReply()
    }

    /// Marks a connection busy (a reply in flight), so that shutdown lets it finish.
    package func setBusy(_ record: ConnectionRecord, _ busy: Bool) {
        record.busy = busy
    }

    /// A resumed TLS session skips the verification callback: verify the certificate it carries now, against
    /// today's CAs, CRLs and rules, so resumption can never let a revoked or expired client back in.
    package func verifyResumedSession(channel: any Channel, record: ConnectionRecord) async throws {
        guard let verifier = store.active.verifier else { return }
        if let peer = try await channel.nioSSL_peerCertificate().get(),
            await verifier.verify([try peer.toDERBytes()], record: record), let identity = record.identity
        {
            logConnected(record, identity: identity, resumed: true)
        } else {
            record.noteClose("resumed session refused: " + (record.verificationFailure ?? "no client certificate"))
        }
    }
}

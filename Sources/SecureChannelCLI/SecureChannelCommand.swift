import ArgumentParser
import Foundation
import SecureChannel
import SecureChannelConfig
import SecureChannelEST
import SecureChannelPKI

#if canImport(Glibc)
    import Glibc
#endif

/// The `securechannel` command tree. `@main` lives in the `securechannel` target; tests call
/// ``execute(_:)`` in-process.
public struct SecureChannelCommand: AsyncParsableCommand {
    /// The command's configuration: name, abstract, subcommands, examples.
    public static let configuration = CommandConfiguration(
        commandName: "securechannel",
        abstract: "Mutually authenticated TLS: be your own CA, run an mTLS message channel, tunnel any TCP service.",
        discussion: """
            EXAMPLES:
              securechannel demo
              securechannel ca init --dir pki --name Barry
              securechannel ca issue server --dir pki --name Jill --dns localhost \\
                  --ip 127.0.0.1
              securechannel ca issue client --dir pki --name Chris
              securechannel ca list --dir pki
              securechannel cert inspect pki/Jill.crt
              securechannel cert verify --ca pki/ca.crt --purpose server \\
                  --server-name localhost pki/Jill.crt
              securechannel serve --listen 127.0.0.1:8443 --cert pki/Jill.crt \\
                  --key pki/Jill.key --ca pki/ca.crt --allow-cn Chris
              securechannel send --connect localhost:8443 --cert pki/Chris.crt \\
                  --key pki/Chris.key --ca pki/ca.crt "Hello Jill"
              securechannel ca revoke --dir pki --name Chris --reason keyCompromise
              securechannel tunnel server --listen 0.0.0.0:6380 --target 127.0.0.1:6379 \\
                  --cert pki/Jill.crt --key pki/Jill.key --ca pki/ca.crt --allow-cn Chris
            """,
        version: "0.1.0",
        subcommands: [
            CACommand.self, CertCommand.self, ServeCommand.self, SendCommand.self, DemoCommand.self, TunnelCommand.self,
            BenchCommand.self, ConfigCommand.self, EnrollCommand.self, RenewCommand.self,
        ]
    )

    /// Creates the root command (used by ArgumentParser).
    public init() {}

    /// Parses `arguments` (without the program name), runs the command, prints any error as one line on
    /// stderr, and returns the exit status.
    public static func execute(_ arguments: [String]) async -> Int32 {
        // A closed stdout or stderr pipe becomes EPIPE for Console (a quiet end), never a signal mid-write.
        signal(SIGPIPE, SIG_IGN)
        if let unknown = UnknownSubcommand.find(in: arguments, root: Self.self) {
            Console.error("error: \(unknown)")
            return ExitCode.validationFailure.rawValue
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let error as PKIError {
            Console.error("error: \(error.message)")
            return ExitStatus.failure
        } catch let failure as CertificateVerification.Failure {
            Console.error("error: \(failure.message)")
            return ExitStatus.failure
        } catch let error as SecureChannelError {
            Console.error("error: \(error.message)")
            return ExitStatus.failure
        } catch let error as CLIError {
            Console.error("error: \(error.message)")
            return ExitStatus.failure
        } catch let error as ESTClientError {
            Console.error("error: \(error.message)")
            return ExitStatus.failure
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                Console.error(usageLine(for: error))
                return code.rawValue
            }
            let message = fullMessage(for: error)
            if !message.isEmpty {
                if code == .success { Console.out(message) } else { Console.error(message) }
            }
            return code.rawValue
        }
    }
}

extension SecureChannelCommand {
    /// A usage error as one line, like every other error: what is wrong, and where the help is
    /// (`error: --days must be 1 or more (got 0); see 'securechannel ca issue client --help'`). ArgumentParser's own
    /// form adds the usage and a "Help:" line below.
    static func usageLine(for error: any Error) -> String {
        let first = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid usage"
        let text = first.hasPrefix("Error: ") ? String(first.dropFirst("Error: ".count)) : first
        let full = fullMessage(for: error)
        guard let start = full.range(of: "See '"), let end = full[start.upperBound...].firstIndex(of: "'") else {
            return "error: \(text)"
        }
        return "error: \(text); see '\(full[start.upperBound..<end])'"
    }
}

/// `securechannel ca issue clent …`: ArgumentParser would complain about the first option it cannot place
/// (`Unknown option '--dir'`); say instead that the subcommand is unknown and which ones there are.
enum UnknownSubcommand {
    static func find(in arguments: [String], root: any ParsableCommand.Type) -> String? {
        var command = root
        var path = [root.configuration.commandName ?? "securechannel"]
        for argument in arguments {
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty, !argument.hasPrefix("-") else { return nil }
            let names = subcommands.map { $0.configuration.commandName ?? "" }
            if let index = names.firstIndex(of: argument) {
                command = subcommands[index]
                path.append(argument)
                continue
            }
            if argument == "help" { return nil }
            let guess = names.min { distance($0, argument) < distance($1, argument) }
            let hint = guess.flatMap { distance($0, argument) <= 2 ? " (did you mean '\($0)'?)" : nil } ?? ""
            return
                "unknown subcommand '\(argument)' for '\(path.joined(separator: " "))'\(hint); use one of: \(names.joined(separator: ", "))"
        }
        return nil
    }
    static func distance(_ a: String, _ b: String) -> Int { Suggestion.distance(a, b) }
}

/// Exit statuses of the CLI.
enum ExitStatus {
    /// The command failed; stderr says why.
    static let failure: Int32 = 1
}

/// An error raised by the CLI layer itself (bad combination of flags found at run time).
struct CLIError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Writing to stdout and stderr, line by line and unbuffered, with write(2): Foundation's `FileHandle.write` traps
/// when the reader of a pipe has gone (`securechannel bench … | head`), and SIGPIPE is ignored in this process
/// (``SecureChannelCommand/execute(_:)``), so a closed pipe shows up here as EPIPE.
enum Console {
    /// The exit status of a command whose output pipe was closed: what a shell shows for SIGPIPE (128 + 13).
    static let closedPipeStatus: Int32 = 141

    static func out(_ line: String) {
        write(STDOUT_FILENO, line + "\n", onClosedPipe: .exit)
    }

    static func error(_ line: String) {
        write(STDERR_FILENO, line + "\n", onClosedPipe: .exit)
    }

    /// What to do when the reader is gone.
    enum ClosedPipe {
        /// End the command quietly with ``closedPipeStatus`` (nobody is reading its answer).
        case exit
        /// Drop the text (a server's log line: the server goes on).
        case drop
    }

    static func write(_ fd: Int32, _ text: String, onClosedPipe: ClosedPipe) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                if errno == EPIPE, onClosedPipe == .exit { Glibc.exit(closedPipeStatus) }
                return
            }
            bytes = bytes.dropFirst(n)
        }
    }
}

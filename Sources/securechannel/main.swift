import Foundation
import SecureChannelCLI

exit(await SecureChannelCommand.execute(Array(CommandLine.arguments.dropFirst())))

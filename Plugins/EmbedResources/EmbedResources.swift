import Foundation
import PackagePlugin

/// Embeds `openapi.yaml` and every file under `sql/` into the library as Swift string literals, so the
/// `madoguchi` binary carries its own schema and contract: no resource bundle to install beside it, and
/// a new migration file is picked up without touching Swift code.
@main
struct EmbedResources: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let root = context.package.directoryURL
        let sqlDirectory = root.appending(path: "sql")
        var inputs = [root.appending(path: "openapi.yaml")]
        if let walker = FileManager.default.enumerator(at: sqlDirectory, includingPropertiesForKeys: nil) {
            for case let url as URL in walker where url.pathExtension == "sql" {
                inputs.append(url)
            }
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedResources.swift")
        return [
            .buildCommand(
                displayName: "Embedding openapi.yaml and sql/ into \(target.name)",
                executable: try context.tool(named: "EmbedResourcesTool").url,
                arguments: [root.path, output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}

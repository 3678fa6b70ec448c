import Foundation
import MadoguchiAPI
import OpenAPIRuntime

/// Reports over HTTP: JSON by default, CSV streamed when asked (`Accept: text/csv` or `format=csv`).
/// Every number comes from SQL; Swift only turns rows into JSON members or CSV lines.
extension APIHandler {
    var reports: ReportStore { ReportStore(database: database, logger: logger) }

    func getVolumeReport(_ input: Operations.GetVolumeReport.Input) async throws -> Operations.GetVolumeReport.Output {
        let query = input.query
        let request = try Self.reportRequest(
            from: query.from, to: query.to, granularity: query.granularity?.rawValue, timeZone: query.timeZone,
            channel: query.channel?.rawValue, queue: query.queue, category: query.category, tag: query.tag, agent: query.agentId,
            priority: query.priority?.rawValue)
        if Self.wantsCSV(format: query.format?.rawValue, accept: input.headers.accept.map { ($0.contentType.rawValue, $0.quality.doubleValue) }) {
            let pipe = try await reports.csv(.volume, request, byteOrderMark: query.bom ?? false)
            return .ok(.init(body: .csv(HTTPBody(pipe, length: .unknown, iterationBehavior: .single))))
        }
        let rows = try await reports.rows(.volume, request)
        return .ok(.init(body: .json(.init(
            timeZone: request.timeZone, granularity: .init(rawValue: request.granularity.rawValue)!, from: request.from, to: request.to,
            items: rows.map { row in
                .init(period: row[0].text, periodStart: row[1].time, channel: .init(rawValue: row[2].text)!, newTickets: row[3].integer,
                      inboundMessages: row[4].integer)
            }))))
    }

    func getBacklogReport(_ input: Operations.GetBacklogReport.Input) async throws -> Operations.GetBacklogReport.Output {
        let query = input.query
        let request = try Self.reportRequest(
            from: query.from, to: query.to, granularity: query.granularity?.rawValue, timeZone: query.timeZone,
            channel: query.channel?.rawValue, queue: query.queue, category: query.category, tag: query.tag, agent: query.agentId,
            priority: query.priority?.rawValue)
        if Self.wantsCSV(format: query.format?.rawValue, accept: input.headers.accept.map { ($0.contentType.rawValue, $0.quality.doubleValue) }) {
            let pipe = try await reports.csv(.backlog, request, byteOrderMark: query.bom ?? false)
            return .ok(.init(body: .csv(HTTPBody(pipe, length: .unknown, iterationBehavior: .single))))
        }
        let rows = try await reports.rows(.backlog, request)
        return .ok(.init(body: .json(.init(
            timeZone: request.timeZone, granularity: .init(rawValue: request.granularity.rawValue)!, from: request.from, to: request.to,
            items: rows.map { row in
                .init(period: row[0].text, periodEnd: row[1].time, status: .init(rawValue: row[2].text)!, openTickets: row[3].integer,
                      ageUnder1d: row[4].integer, age1dTo3d: row[5].integer, age3dTo7d: row[6].integer,
                      age7dTo30d: row[7].integer, ageOver30d: row[8].integer)
            }))))
    }

    func getResponseTimesReport(_ input: Operations.GetResponseTimesReport.Input) async throws -> Operations.GetResponseTimesReport.Output {
        let query = input.query
        let request = try Self.reportRequest(
            from: query.from, to: query.to, granularity: query.granularity?.rawValue, timeZone: query.timeZone,
            channel: query.channel?.rawValue, queue: query.queue, category: query.category, tag: query.tag, agent: query.agentId,
            priority: query.priority?.rawValue)
        if Self.wantsCSV(format: query.format?.rawValue, accept: input.headers.accept.map { ($0.contentType.rawValue, $0.quality.doubleValue) }) {
            let pipe = try await reports.csv(.responseTimes, request, byteOrderMark: query.bom ?? false)
            return .ok(.init(body: .csv(HTTPBody(pipe, length: .unknown, iterationBehavior: .single))))
        }
        let rows = try await reports.rows(.responseTimes, request)
        return .ok(.init(body: .json(.init(
            timeZone: request.timeZone, granularity: .init(rawValue: request.granularity.rawValue)!, from: request.from, to: request.to,
            items: rows.map { row in
                .init(period: row[0].text, periodStart: row[1].time, metric: .init(rawValue: row[2].text)!, count: row[3].integer,
                      wallMedianSeconds: row[4].number, wallP90Seconds: row[5].number, wallMeanSeconds: row[6].number,
                      businessMedianSeconds: row[7].number, businessP90Seconds: row[8].number, businessMeanSeconds: row[9].number)
            }))))
    }

    static func reportRequest(
        from: String, to: String, granularity: String?, timeZone: String?, channel: String?, queue: String?, category: String?,
        tag: String?, agent: Components.Schemas.Identifier?, priority: String?
    ) throws -> ReportRequest {
        try ReportRequest(
            from: from, to: to, granularity: granularity.flatMap(ReportRequest.Granularity.init(rawValue:)), timeZone: timeZone,
            filters: .init(channel: channel.flatMap(Channel.init(rawValue:)), queue: queue, category: category, tag: tag, agentID: agent?.uuid,
                           priority: priority.flatMap(Ticket.Priority.init(rawValue:))))
    }

    /// `format=csv`, or an Accept whose most preferred type is `text/csv`; JSON otherwise.
    static func wantsCSV(format: String?, accept: [(type: String, quality: Double)]) -> Bool {
        if let format { return format == "csv" }
        let preferred = accept.filter { $0.quality > 0 }.max { $0.quality < $1.quality }
        return preferred?.type == "text/csv"
    }
}

-- Loading an order reads its shipments' lines by shipment; without this
-- every load scans all shipment lines, which grows with the order book.
CREATE INDEX shipment_lines_shipment ON shipment_lines (shipment, line_no, batch_no);

"""The WFO API: XML socket server and WebAPI in front of one dispatcher."""

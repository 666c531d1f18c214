import os  # added for the tests
import trio_socketserver.sync as socketserver

class MyUDPHandler(socketserver.BaseRequestHandler):

    def handle(self):
        data = self.request[0].strip()
        socket = self.request[1]
        print("{} wrote:".format(self.client_address[0]))
        print(data)
        socket.sendto(data.upper(), self.client_address)

if __name__ == "__main__":
    HOST, PORT = "localhost", int(os.environ.get("EXAMPLE_PORT", "9999"))  # port from the environment
    with socketserver.UDPServer((HOST, PORT), MyUDPHandler) as server:
        print("listening on", server.server_address, flush=True)  # added for the tests
        server.serve_forever()
